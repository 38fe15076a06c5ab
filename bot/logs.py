"""Logging for the ``bananabot`` command: one stderr handler, structured, never a secret.

Every record carries its context as ``extra`` fields (``job``, ``provider``, ``code``,
``cost_micros`` ...). ``BANANABOT_LOG_FORMAT=text`` (the default) appends them to the line
as ``key=value``; ``json`` writes one JSON object per record (python-json-logger) for log
pipelines.

:func:`configure_logging` is the CLI's logging setup. Its handler has a :class:`RedactSecrets`
filter that replaces every configured credential (``DISCORD_TOKEN``, ``SLACK_BOT_TOKEN``,
``RUNWARE_API_KEY``, ... every :class:`pydantic.SecretStr` setting) with ``[redacted]``
wherever it appears in a record: the message and its arguments, the exception text, the
stack and the ``extra`` fields. Nothing bananabot or its libraries log today carries a key
(tests/test_secrets_in_logs.py checks that with every logger at DEBUG); the filter keeps it so
when a library starts logging headers or a vendor echoes a key in an error body.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Final, TextIO

from pythonjsonlogger.json import JsonFormatter

from bot.settings import Settings

__all__ = [
    "FORMAT",
    "REDACTED",
    "RedactSecrets",
    "TextFormatter",
    "configure_logging",
    "json_formatter",
    "secret_values",
]

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
REDACTED: Final = "[redacted]"
MIN_SECRET_LENGTH: Final = 6
"""Shorter values are not redacted: they cannot be told apart from ordinary words (a
one-letter "secret" would blank out every log line), and no real credential is that short."""

_RECORD_FIELDS: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def secret_values(settings: Settings) -> list[str]:
    """The values of every secret setting that is set (``SecretStr`` fields)."""
    values = []
    for name in settings.secret_fields():
        secret = getattr(settings, name)
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


class RedactSecrets(logging.Filter):
    """Replace known secret values with ``[redacted]`` in a record, in place.

    Covers the rendered message (``msg % args``), the exception text, ``stack_info`` and
    ``extra`` fields (text replaced; other values whose ``repr`` shows a secret become that
    ``repr``, redacted). The record is changed only when it holds a secret. Handlers that
    run after this one see the redacted record too.

    Args:
        secrets: values to hide; empty ones and ones shorter than
            :data:`MIN_SECRET_LENGTH` are ignored.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        kept = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        self._secrets = sorted(kept, key=len, reverse=True)  # longest first: overlaps

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _holds_secret(self, text: str) -> bool:
        return any(secret in text for secret in self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if self._holds_secret(message):
            record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self._holds_secret(record.exc_text):
            # The text is kept (formatters print exc_text); the live exception, which still
            # holds the secret, is dropped so no formatter renders it again.
            record.exc_text, record.exc_info = self.redact(record.exc_text), None
        if record.stack_info and self._holds_secret(record.stack_info):
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key in _RECORD_FIELDS:
                continue
            shown = value if isinstance(value, str) else repr(value)
            if self._holds_secret(shown):
                setattr(record, key, self.redact(shown))
        return True


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (as
    :data:`logging.lastResort` does), so a replaced stderr is never written to after it closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}


class TextFormatter(logging.Formatter):
    """``FORMAT``, then the record's ``extra`` fields as ``key=value`` (values with spaces
    or quotes are quoted), e.g. ``... job failed job=Xy12 provider=runware code=timeout``."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = []
        for key, value in _extras(record).items():
            text = str(value)
            if not text or any(c in text for c in ' "=\n'):
                text = json.dumps(text, ensure_ascii=False)
            pairs.append(f"{key}={text}")
        if not pairs:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {' '.join(pairs)}{newline}{rest}"


def json_formatter() -> logging.Formatter:
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, every
    ``extra`` field, and ``exc_info`` (the traceback text) when there is one."""
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(
    level: int, secrets: Iterable[str] = (), log_format: str = "text"
) -> logging.Handler:
    """The CLI's logging: records at ``level`` and above go to stderr, secrets redacted.

    Installs one handler on the root logger (replacing the one an earlier call installed;
    handlers others installed are left alone) and sets the root level. aiosqlite's own
    DEBUG lines (every SQL statement with its parameters: prompts, reply handles that hold
    interaction tokens) are never written.

    Args:
        level: the root logger's level (``logging.INFO``, ...).
        secrets: values never to write (see :func:`secret_values`).
        log_format: ``text`` (``key=value`` fields) or ``json`` (one object per line).

    Returns:
        The handler (its :class:`RedactSecrets` filter is installed).

    Raises:
        ValueError: another ``log_format``.
    """
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {log_format!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(TextFormatter() if log_format == "text" else json_formatter())
    handler.addFilter(RedactSecrets(secrets))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiosqlite").setLevel(max(level, logging.INFO))
    return handler
