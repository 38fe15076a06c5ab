"""Structured logs: every record's context (job id, provider, error code) reaches the line,
as ``key=value`` text or as one JSON object; secrets are redacted in both."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_levels() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in ("", "aiosqlite")}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def captured(log_format: str, secrets: tuple[str, ...] = ()) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        handler = configure_logging(logging.INFO, secrets, log_format)
        try:
            yield stream
        finally:
            logging.getLogger().removeHandler(handler)


def test_text_lines_carry_the_job_fields() -> None:
    with captured("text") as out:
        logging.getLogger("bot.worker").warning(
            "job failed", extra={"job": "Xy12", "provider": "runware", "code": "timeout"}
        )
    line = out.getvalue().strip()
    assert line.endswith("WARNING bot.worker job failed job=Xy12 provider=runware code=timeout")


def test_text_quotes_values_with_spaces_and_keeps_tracebacks_below() -> None:
    with captured("text") as out:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("bot.worker").exception(
                "job crashed", extra={"job": "J1", "why": 'a "quoted" reason'}
            )
    first, *rest = out.getvalue().splitlines()
    assert first.endswith('job crashed job=J1 why="a \\"quoted\\" reason"')
    assert rest[0].startswith("Traceback") and "RuntimeError: boom" in rest[-1]


def test_json_lines_are_objects_with_the_fields_and_no_secret() -> None:
    secret = "rw-SECRET-0123456789"
    with captured("json", (secret,)) as out:
        logging.getLogger("bot.providers").error(
            "provider refused", extra={"job": "J2", "detail": f"key {secret} refused"}
        )
    record = json.loads(out.getvalue())
    assert record["level"] == "ERROR" and record["logger"] == "bot.providers"
    assert record["message"] == "provider refused" and record["job"] == "J2"
    assert record["detail"] == "key [redacted] refused"
    assert secret not in out.getvalue()


def test_sql_statements_are_never_logged() -> None:
    """aiosqlite logs every statement with its parameters (prompts, reply handles) at DEBUG."""
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        handler = configure_logging(logging.DEBUG, (), "text")
        try:
            logging.getLogger("aiosqlite").debug("executing %s", "INSERT INTO jobs ...")
            logging.getLogger("bot.worker").debug("a debug line")
        finally:
            logging.getLogger().removeHandler(handler)
    assert "INSERT INTO jobs" not in stream.getvalue()
    assert "a debug line" in stream.getvalue()


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        configure_logging(logging.INFO, (), "xml")
