"""The Slack adapter's test harness (and its smoke tests): the real core, the real slack-bolt
and slack-sdk, and the local fake Slack, all in this process.

``running_slack`` builds the core with ``build_app(Settings(...))`` (SQLite and media in
``tmp_path``, the sandbox provider), registers a :class:`SlackAdapter` with the delivery
router, runs the worker and ``adapter.serve()``, and waits until the adapter listens (HTTP
mode on a loopback port 0) or is connected (Socket Mode). A "restart" is leaving the
context and entering it again on the same ``tmp_path`` and the same fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from adapters.slack import SlackAdapter
from bot.app import App, build_app
from bot.errors import ConfigurationError
from bot.models import Job, Origin
from bot.settings import Settings
from tests.fakes.slack import FakeSlack, SignedRequest, SignedResponse

pytestmark = pytest.mark.timeout(30)

JSON = dict[str, Any]


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/bot.db",
        "data_dir": tmp_path / "data",
        "sandbox_delay": 0.0,
        "runware_api_key": None,
        "providers": [],
        "poll_initial": 0.05,
        "poll_max": 0.2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Stack:
    fake: FakeSlack
    app: App
    adapter: SlackAdapter

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.adapter.bound_port}/slack/events"

    async def post(
        self, request: SignedRequest, headers: dict[str, str] | None = None
    ) -> SignedResponse:
        return await self.fake.post_signed(self.url, request, headers)

    async def jobs(self, user: str, count: int = 1, timeout: float = 10.0) -> list[Job]:
        """The user's jobs in the fake workspace, newest first, once ``count`` exist."""
        origin = Origin(
            platform="slack", workspace_id=self.fake.team_id, channel_id="", user_id=user
        )
        async with asyncio.timeout(timeout):
            while len(jobs := await self.app.service.recent(origin, 50)) < count:
                await asyncio.sleep(0.02)
        return jobs

    async def all_jobs(self, user: str) -> list[Job]:
        origin = Origin(
            platform="slack", workspace_id=self.fake.team_id, channel_id="", user_id=user
        )
        return await self.app.service.recent(origin, 50)

    async def result(self, channel: str, job_id: str | None = None, timeout: float = 15.0) -> JSON:
        """The bot message in ``channel`` (any thread) whose buttons name ``job_id``
        (or any job), once it exists."""

        def find() -> JSON | None:
            for message in reversed(self.fake.bot_messages(channel)):
                values = button_values(message)
                if values and (job_id is None or values[0].startswith(f"{job_id}:")):
                    return message
            return None

        return await self.fake.wait_for(find, timeout, f"a result for {job_id or 'a job'}")

    async def ephemeral(self, user: str, contains: str, timeout: float = 10.0) -> JSON:
        return await self.fake.wait_for(
            lambda: next((e for e in self.fake.ephemeral_for(user) if contains in e["text"]), None),
            timeout,
            f"an ephemeral message with {contains!r}",
        )


def button_values(message: JSON) -> list[str]:
    return [
        element["value"]
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
    ]


def action_ids(message: JSON) -> list[str]:
    return [
        element["action_id"]
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
    ]


def block_types(message: JSON) -> list[str]:
    return [block["type"] for block in message.get("blocks") or []]


@contextlib.asynccontextmanager
async def running_slack(
    fake: FakeSlack,
    tmp_path: Path,
    *,
    socket: bool = False,
    admins: Iterable[str] = (),
    image_retry_delays: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4),
    **overrides: Any,
) -> AsyncIterator[Stack]:
    async with build_app(settings_for(tmp_path, **overrides)) as app:
        adapter = SlackAdapter(
            service=app.service,
            media=app.media,
            bot_token=fake.bot_token,
            app_token=fake.app_token if socket else None,
            signing_secret=None if socket else fake.signing_secret,
            api_url=fake.api_url,
            port=0,
            admins=admins,
            progress_interval=0.05,
            image_retry_delays=image_retry_delays,
            on_ack=lambda seconds: app.metrics.ack("slack", seconds),
        )
        app.router.register(adapter.platform, adapter)
        worker = asyncio.create_task(app.worker.run(), name="worker")
        serving = asyncio.create_task(adapter.serve(), name="slack")
        try:
            async with asyncio.timeout(10):
                started = asyncio.create_task(adapter.started.wait())
                done, _ = await asyncio.wait(
                    {started, serving}, return_when=asyncio.FIRST_COMPLETED
                )
                if serving in done:
                    serving.result()
                if socket:
                    await fake.wait_socket_connected(count=len(fake.socket_connections) or 1)
            yield Stack(fake, app, adapter)
        finally:
            app.router.unregister(adapter.platform)
            for task in (serving, worker):
                task.cancel()
            for task in (serving, worker):
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_http_mode_serves_and_stops(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        assert stack.adapter.bound_port and not stack.adapter.socket_mode
        challenge = await stack.post(fake.url_verification("c-1"))
        assert challenge.json() == {"challenge": "c-1"}
    assert not stack.adapter.started.is_set()


async def test_socket_mode_connects_and_closes(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path, socket=True) as stack:
        assert stack.adapter.socket_mode and stack.adapter.bound_port is None
        opened = fake.calls("apps.connections.open")[0]
        assert opened.headers["Authorization"] == f"Bearer {fake.app_token}"
    await fake.wait_socket_disconnected()


async def test_refused_tokens_stop_the_adapter_with_a_clear_error(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with build_app(settings_for(tmp_path)) as app:
        common: dict[str, Any] = {
            "service": app.service,
            "media": app.media,
            "api_url": fake.api_url,
            "port": 0,
        }
        bad_bot = SlackAdapter(bot_token="xoxb-wrong", signing_secret="s", **common)
        with pytest.raises(
            ConfigurationError, match=r"Slack refused SLACK_BOT_TOKEN \(invalid_auth\)"
        ):
            await bad_bot.serve()
        bad_app = SlackAdapter(bot_token=fake.bot_token, app_token="xapp-wrong", **common)
        with pytest.raises(ConfigurationError, match="Slack refused SLACK_APP_TOKEN"):
            await bad_app.serve()
        with pytest.raises(ConfigurationError, match=r"SLACK_APP_TOKEN .* or SLACK_SIGNING_SECRET"):
            SlackAdapter(bot_token=fake.bot_token, **common)


async def test_from_settings_picks_socket_mode_when_an_app_token_is_set(tmp_path: Path) -> None:
    async with build_app(settings_for(tmp_path)) as app:
        core: dict[str, Any] = {
            "service": app.service,
            "media": app.media,
        }
        socket = settings_for(tmp_path, slack_bot_token="xoxb-1", slack_app_token="xapp-1")
        assert SlackAdapter.from_settings(socket, **core).socket_mode
        http = settings_for(
            tmp_path,
            slack_bot_token="xoxb-1",
            slack_signing_secret="s",
            slack_port=0,
            slack_admins="U1, U2",
        )
        adapter = SlackAdapter.from_settings(http, **core)
        assert not adapter.socket_mode and adapter.port == 0
        with pytest.raises(ConfigurationError, match="SLACK_BOT_TOKEN is not set"):
            SlackAdapter.from_settings(settings_for(tmp_path), **core)
