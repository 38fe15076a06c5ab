"""Secrets never reach the logs, stdout, stderr or an error message.

Every credential bananabot reads gets a distinctive random canary value. Each path (the
settings object, ``bananabot doctor``, every provider against its emulator for a success, a
refused key and a 500, Slack HTTP mode with a forged and a good signature and a refused
token, Discord login with the fake gateway and a refused token) runs with the root logger
and the libraries' loggers at DEBUG. Two captures watch it:

* ``raw``: a handler placed first on the root logger that writes *everything* a record holds
  (message, ``msg`` and ``args``, the full exception chain, the stack, the ``extra`` fields)
  before any filter could redact it, so a secret that is logged at all is caught here;
* the product's own handler from :func:`bot.logs.configure_logging` (the CLI's logging
  setup, with its :class:`bot.logs.RedactSecrets` filter) writing to stderr (``capsys``).

A capture that sees nothing proves nothing, so each test also checks what it must have seen
(a marker, DEBUG records of httpcore, discord.py and slack-sdk, the canary on the wire) and
:func:`test_the_capture_sees_every_part_of_a_record_and_the_product_redacts_them` shows that
a logged canary is caught by ``raw`` and redacted by the product in every part of a record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina

from adapters.discord import DiscordAdapter
from adapters.slack import SlackAdapter
from bot.app import build_app, build_providers
from bot.catalog import default_catalog, validate
from bot.cli import main
from bot.errors import ConfigurationError, ProviderAuthError, ProviderUnavailable
from bot.interfaces import GenerationTask
from bot.logs import REDACTED, RedactSecrets, configure_logging, secret_values
from bot.models import ImageRequest
from bot.settings import Settings
from tests.fakes.discord import FakeDiscord  # first: imports discord.py without audioop warning
from tests.fakes.gemini import GeminiEmulator
from tests.fakes.runbase import RunbaseEmulator
from tests.fakes.runflow import RunflowEmulator
from tests.fakes.runware import RunwareEmulator
from tests.fakes.slack import FakeSlack
from tests.test_discord_harness import running_bot
from tests.test_discord_harness import settings_for as discord_settings
from tests.test_slack_harness import running_slack
from tests.test_slack_harness import settings_for as slack_settings

pytestmark = pytest.mark.timeout(60)


def _canary(kind: str, prefix: str = "") -> str:
    return f"{prefix}CANARY-{kind}-{secrets.token_hex(10)}"


CANARIES: dict[str, str] = {
    "DISCORD_TOKEN": _canary("discord-token"),
    "SLACK_BOT_TOKEN": _canary("slack-bot", "xoxb-"),
    "SLACK_APP_TOKEN": _canary("slack-app", "xapp-"),
    "SLACK_SIGNING_SECRET": _canary("slack-signing"),
    "RUNWARE_API_KEY": _canary("runware"),
    "RUNFLOW_API_KEY": _canary("runflow"),
    "RUNBASE_API_KEY": _canary("runbase"),
    "GEMINI_API_KEY": _canary("gemini"),
}
"""The configured credentials, one distinctive random value each."""
WRONG: dict[str, str] = {name: _canary(f"wrong-{name.lower()}") for name in CANARIES}
"""Keys the fakes refuse (a leaked wrong key is as bad as a leaked right one)."""
ALL_CANARIES: dict[str, str] = {**CANARIES, **{f"wrong {k}": v for k, v in WRONG.items()}}

LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "discord",
    "slack_bolt",
    "slack_sdk",
    "aiohttp",
    "google_genai",
    "asyncio",
    "aiosqlite",
    "stamina",
)
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def all_settings(**values: Any) -> Settings:
    """Settings with every credential set to its canary (no ``.env``, no environment)."""
    credentials = {name.lower(): value for name, value in CANARIES.items()}
    return Settings(_env_file=None, **{**credentials, **values})  # type: ignore[call-arg]


class EverythingHandler(logging.Handler):
    """Keeps every record with all it holds, formatted; never filters or redacts."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.texts: list[str] = []
        self.seen: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string is still a record to search
            message = f"<unformattable: {exc!r}>"
        parts = [f"{record.levelname} {record.name} {message}", repr(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        parts.append(repr({k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}))
        self.texts.append("\n".join(parts))
        self.seen.append((record.name, record.levelno, message))


@dataclass
class Capture:
    raw: EverythingHandler
    errors: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.raw.texts)

    def error(self, exc: BaseException) -> None:
        """Keep what an error would show anywhere: str, repr and the whole chain."""
        self.errors += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]

    def records(self, logger: str, level: int = logging.DEBUG) -> list[str]:
        """Messages of ``logger`` (and its children) logged at exactly ``level``."""
        return [
            message
            for name, levelno, message in self.raw.seen
            if (name == logger or name.startswith(f"{logger}.")) and levelno == level
        ]


@contextlib.contextmanager
def capturing(*, configure: bool) -> Iterator[Capture]:
    """Everything at DEBUG into ``raw``; with ``configure``, the CLI's logging setup too.

    The root logger's handlers (pytest's own) are set aside meanwhile and put back after,
    with every level this changed.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    for handler in saved_handlers:
        root.removeHandler(handler)
    raw = EverythingHandler()
    root.addHandler(raw)  # first, so it sees records before the product's filter runs
    root.setLevel(logging.DEBUG)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        if configure:
            secret_list = [*secret_values(all_settings()), *WRONG.values()]
            configure_logging(logging.DEBUG, secret_list)
        yield Capture(raw)
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def assert_no_canary(**texts: str) -> None:
    for where, text in texts.items():
        for name, value in ALL_CANARIES.items():
            at = text.find(value)
            assert at < 0, f"{name} leaked into {where}: ...{text[max(0, at - 300) : at + 80]!r}"


def assert_clean(capture: Capture, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """No canary in the raw records, stdout, stderr (the product's log lines) or errors."""
    out, err = capsys.readouterr()
    assert_no_canary(raw_log=capture.text, stdout=out, stderr=err, errors="\n".join(capture.errors))
    return out, err


# --- the capture itself ----------------------------------------------------------------------


def test_the_capture_sees_every_part_of_a_record_and_the_product_redacts_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = CANARIES["RUNWARE_API_KEY"]
    marker = f"marker-{secrets.token_hex(6)}"
    with capturing(configure=True) as capture:
        logging.getLogger("httpcore.http11").debug("plain %s", marker)
        logging.getLogger("httpx").debug("Authorization: Bearer %s", key)
        logging.getLogger("slack_sdk").info("headers %r", {"Authorization": f"Bearer {key}"})
        try:
            raise RuntimeError(f"refused key {key}")
        except RuntimeError:
            logging.getLogger("discord.http").exception("failed")
        logging.getLogger("google_genai").warning("stack", stack_info=True, extra={"k": key})
        logging.getLogger("aiohttp.client").error("extra", extra={"sent": {"key": key}})
        logging.getLogger("asyncio").debug(key)
    _, err = capsys.readouterr()

    # The raw capture sees a logged secret in the message, its args, the exception, the
    # extra fields: were anything to log a key, the checks below would catch it.
    assert marker in capture.text
    assert capture.text.count(key) >= 6
    # The product's handler wrote every record, each secret redacted.
    assert marker in err
    assert key not in err
    assert err.count(REDACTED) >= 4
    assert "RuntimeError: refused key [redacted]" in err


def test_the_filter_redacts_extras_stack_and_exceptions_in_place() -> None:
    key = CANARIES["GEMINI_API_KEY"]
    redactor = RedactSecrets([key, "short", ""])
    try:
        raise ValueError(key)
    except ValueError as exc:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "a %s b", (key,), (None, exc, None))
    record.__dict__.update({"token": key, "nested": {"key": key}, "number": 7})
    record.stack_info = f"Stack: {key}"
    assert redactor.filter(record)
    assert record.getMessage() == f"a {REDACTED} b"
    assert record.exc_info is None and record.exc_text and key not in record.exc_text
    assert REDACTED in record.exc_text and record.stack_info == f"Stack: {REDACTED}"
    assert record.__dict__["token"] == REDACTED and key not in record.__dict__["nested"]
    assert record.__dict__["number"] == 7
    assert redactor.redact("too short to redact: short") == "too short to redact: short"


# --- settings and the CLI --------------------------------------------------------------------


def test_settings_show_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    settings = all_settings()
    with capturing(configure=True) as capture:
        logging.getLogger("bot").debug("settings %s / %r / %s", settings, settings, [settings])
    shown = {
        "repr": repr(settings),
        "str": str(settings),
        "model_dump": str(settings.model_dump()),
        "model_dump_json_mode": str(settings.model_dump(mode="json")),
        "model_dump_json": settings.model_dump_json(),
    }
    assert_no_canary(**shown)
    assert_clean(capture, capsys)
    assert "**********" in shown["repr"]
    assert len(capture.records("bot")) == 1
    # Every credential is a secret the CLI's logging hides.
    assert set(secret_values(settings)) >= set(CANARIES.values())


def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    for name in list(os.environ):
        if name.startswith(("BANANABOT_", "DISCORD_", "SLACK_", "GEMINI_", "DATABASE_URL")) or (
            name.endswith("_API_KEY") or name.endswith("_API_URL")
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    values = {
        **CANARIES,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "BANANABOT_DATA_DIR": str(tmp_path / "data"),
        "BANANABOT_LOG_LEVEL": "DEBUG",
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("extra", "code", "expected"),
    [
        ({}, 0, "OK"),
        ({"BANANABOT_PROVIDERS": "runware,nosuch"}, 3, "Problem: BANANABOT_PROVIDERS"),
        ({"BANANABOT_WEB_PORT": "not-a-port"}, 3, "configuration error"),
    ],
)
def test_doctor_shows_and_logs_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    extra: dict[str, str],
    code: int,
    expected: str,
) -> None:
    _cli_env(monkeypatch, tmp_path, **extra)
    with capturing(configure=False) as capture:  # main() sets its own logging up
        assert main(["-v", "doctor"]) == code
        installed = [
            f
            for h in logging.getLogger().handlers
            for f in h.filters
            if isinstance(f, RedactSecrets)
        ]
    out, err = assert_clean(capture, capsys)
    assert expected in out + err
    if "BANANABOT_WEB_PORT" in extra:
        return  # refused before logging is set up
    assert out.count("(set, hidden)") >= len(CANARIES)
    # main() installed the product's logging at DEBUG, with every configured secret.
    [redactor] = installed
    assert all(redactor.redact(value) == REDACTED for value in CANARIES.values())
    # DEBUG reached stderr (aiosqlite's SQL lines are held back on purpose: they carry
    # prompts and reply handles).
    assert " DEBUG asyncio " in err and " DEBUG aiosqlite " not in err


# --- providers against their emulators -------------------------------------------------------

PROVIDERS = {
    "runware": (RunwareEmulator, "RUNWARE_API_KEY"),
    "runflow": (RunflowEmulator, "RUNFLOW_API_KEY"),
    "runbase": (RunbaseEmulator, "RUNBASE_API_KEY"),
    "gemini": (GeminiEmulator, "GEMINI_API_KEY"),
}


def _task() -> GenerationTask:
    request = ImageRequest(prompt="a lighthouse at dusk", aspect_ratio="16:9")
    return GenerationTask("job-canary", request, validate(default_catalog(), request), ())


async def _no_store(task_id: str) -> None:
    pass


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_providers_log_no_key_on_success_refusal_and_500(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator_type, env = PROVIDERS[name]
    async with (
        emulator_type(api_key=CANARIES[env]) as emulator,
        httpx.AsyncClient(timeout=10.0) as client,
    ):

        def provider(key: str) -> Any:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                **{
                    env.lower(): key,
                    f"{name}_api_url": emulator.base_url,
                    "providers": [name],
                    "poll_initial": 0.01,
                    "poll_max": 0.05,
                    "provider_deadline": 20.0,
                },
            )
            return build_providers(settings, client)[name]

        with capturing(configure=True) as capture, stamina.set_testing(True, attempts=3):
            made = [provider(CANARIES[env]), provider(WRONG[env]), provider(CANARIES[env])]
            try:
                result = await made[0].generate(_task(), _no_store)
                assert result.images
                with pytest.raises(ProviderAuthError) as refused:
                    await made[1].generate(_task(), _no_store)
                capture.error(refused.value)
                emulator.fail_next(500, 5)
                with pytest.raises(ProviderUnavailable) as failed:
                    await made[2].generate(_task(), _no_store)
                capture.error(failed.value)
            finally:
                for each in made:
                    if hasattr(each, "aclose"):
                        await each.aclose()

    _, err = assert_clean(capture, capsys)
    # What the captures must have seen: the keys went over the wire, and the HTTP stack and
    # the provider logged at DEBUG and INFO.
    sent = "\n".join(str(dict(r.headers)) for r in emulator.requests)
    assert CANARIES[env] in sent and WRONG[env] in sent
    assert capture.records("httpcore", logging.DEBUG), "no DEBUG record from httpcore"
    assert capture.records("httpx", logging.INFO), "no record from httpx"
    assert capture.records(f"bot.providers.{name}", logging.DEBUG)
    assert " INFO httpx HTTP Request: POST " in err, "the product's handler wrote nothing"
    assert refused.value.status in (400, 401, 403) and failed.value.status == 500


# --- Slack -----------------------------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(
        bot_token=CANARIES["SLACK_BOT_TOKEN"],
        app_token=CANARIES["SLACK_APP_TOKEN"],
        signing_secret=CANARIES["SLACK_SIGNING_SECRET"],
    ) as fake:
        yield fake


async def test_slack_http_mode_logs_no_secret(
    slack: FakeSlack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with capturing(configure=True) as capture:
        async with running_slack(slack, tmp_path) as stack:
            forged = await stack.post(slack.slash_command(text="a forged cat", bad_signature=True))
            assert forged.status == 401
            good = await stack.post(slack.slash_command(text="a good cat --ar 16:9"))
            assert good.status == 200
            await stack.result(slack.channel.id)
        async with build_app(slack_settings(tmp_path / "refused")) as app:
            refused = SlackAdapter(
                service=app.service,
                media=app.media,
                bot_token=WRONG["SLACK_BOT_TOKEN"],
                signing_secret=CANARIES["SLACK_SIGNING_SECRET"],
                api_url=slack.api_url,
                port=0,
            )
            with pytest.raises(ConfigurationError) as info:
                await refused.serve()
            capture.error(info.value)

    _, err = assert_clean(capture, capsys)
    headers = "\n".join(str(r.headers) for r in slack.requests)
    assert CANARIES["SLACK_BOT_TOKEN"] in headers and WRONG["SLACK_BOT_TOKEN"] in headers
    assert any("bad signature" in m for m in capture.records("adapters.slack", logging.WARNING))
    assert capture.records("slack_bolt", logging.DEBUG), "no DEBUG record from slack_bolt"
    assert capture.records("slack_sdk", logging.DEBUG), "no DEBUG record from slack_sdk"
    assert " DEBUG slack_sdk" in err, "the product's handler wrote nothing"


# --- Discord ---------------------------------------------------------------------------------


async def test_discord_login_and_a_refused_token_log_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with capturing(configure=True) as capture:
        async with FakeDiscord(token=CANARIES["DISCORD_TOKEN"]) as fake:
            async with running_bot(fake, tmp_path) as bot:
                payload = await bot.imagine({"prompt": "a banana on the moon"})
                await bot.result_of(payload["id"])
            settings = discord_settings(
                fake, tmp_path / "refused", discord_token=WRONG["DISCORD_TOKEN"]
            )
            async with build_app(settings) as app:
                adapter = DiscordAdapter.from_settings(
                    settings, service=app.service, media=app.media, guild_ready_timeout=0.05
                )
                with pytest.raises(ConfigurationError) as info:
                    await adapter.serve()
                capture.error(info.value)

    _, err = assert_clean(capture, capsys)
    assert fake.identifies and fake.identifies[0]["token"] == CANARIES["DISCORD_TOKEN"]
    sent = "\n".join(str(r.headers) for r in fake.requests)
    assert CANARIES["DISCORD_TOKEN"] in sent and WRONG["DISCORD_TOKEN"] in sent
    assert capture.records("discord.gateway", logging.DEBUG), "no DEBUG record from the gateway"
    assert capture.records("discord.http", logging.DEBUG), "no DEBUG record from discord.http"
    assert "Discord refused DISCORD_TOKEN" in info.value.message
    assert " DEBUG discord.gateway " in err, "the product's handler wrote nothing"
