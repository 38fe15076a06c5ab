"""The Discord adapter's test harness (and its smoke test): the real core, the real discord.py
client and the local fake Discord, all in this process.

``running_bot`` builds the core with ``build_app(Settings(...))`` (SQLite and media in
``tmp_path``) or, for a custom provider, ``assemble_core``; starts the worker and
``DiscordAdapter.serve()``; and waits until discord.py is ready. A "restart" is leaving the
context and entering it again on the same ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from adapters.discord import DiscordAdapter
from bot.app import assemble_core, build_app
from bot.catalog import default_catalog
from bot.interfaces import MediaStore, Provider
from bot.media.store import FileMediaStore
from bot.policy import ChannelPolicy
from bot.service import ImageService
from bot.settings import Settings
from bot.storage import SqliteStore
from bot.worker import Worker
from tests.fakes.discord import (  # first: it imports discord.py without the audioop warning
    FakeDiscord,
    RecordedRequest,
)

pytestmark = pytest.mark.timeout(30)

JSON = dict[str, Any]


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def settings_for(fake: FakeDiscord, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings pointing at the fake, with the sandbox (no keys) unless overridden."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/bot.db",
        "data_dir": tmp_path / "data",
        "sandbox_delay": 0.0,
        "runware_api_key": None,
        "providers": [],
        "discord_token": fake.token,
        "discord_api_url": fake.api_url,
        "discord_gateway_url": fake.gateway_url,
        "discord_guild_ids": [fake.guild.id],
        "poll_initial": 0.05,
        "poll_max": 0.2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Bot:
    fake: FakeDiscord
    adapter: DiscordAdapter
    service: ImageService
    store: SqliteStore
    media: MediaStore
    acks: list[float]

    async def imagine(self, options: Mapping[str, Any], **kwargs: Any) -> JSON:
        """Send ``/imagine`` and wait for its first (accepted) callback."""
        payload = await self.fake.send_interaction(
            self.fake.slash_command("imagine", dict(options), **kwargs)
        )
        await self.fake.wait_for_callback(payload["id"])
        return payload

    async def send(self, payload: JSON) -> JSON:
        await self.fake.send_interaction(payload)
        await self.fake.wait_for_callback(payload["id"])
        return payload

    async def result_of(self, interaction_id: str | int, timeout: float = 15.0) -> JSON:
        """The interaction's ``@original`` once it carries buttons (the result)."""

        def ready() -> bool:
            message = self.fake.original_message(interaction_id)
            return bool(message and message.get("components"))

        await self.fake.wait_until(ready, timeout, "a result with buttons")
        message = self.fake.original_message(interaction_id)
        assert message is not None
        return message

    async def latest_job_id(self, user_id: int, count: int = 1) -> str:
        """The newest job of ``user_id`` in the fake guild, once ``count`` of theirs exist."""
        from bot.models import Origin

        origin = Origin(
            platform="discord",
            workspace_id=str(self.fake.guild.id),
            channel_id="",
            user_id=str(user_id),
        )
        async with asyncio.timeout(10):
            while len(jobs := await self.service.recent(origin, 50)) < count:
                await asyncio.sleep(0.02)
        return jobs[0].id


def custom_ids(components: list[Any]) -> list[str]:
    out: list[str] = []
    for comp in components:
        if "custom_id" in comp:
            out.append(comp["custom_id"])
        out.extend(custom_ids(comp.get("components", [])))
    return out


def original_patches(fake: FakeDiscord, payload: Mapping[str, Any]) -> list[RecordedRequest]:
    """Every PATCH of the interaction's ``@original``, in order."""
    suffix = f"/{payload['token']}/messages/@original"
    return [r for r in fake.requests if r.method == "PATCH" and r.path.endswith(suffix)]


def body_of(request: RecordedRequest) -> JSON:
    body = request.payload_json if request.is_multipart else request.json
    assert isinstance(body, dict)
    return body


async def sync(bot: Bot) -> None:
    """The development sync (copy to the test guild) on the running client."""
    import discord

    tree = bot.adapter.client.tree
    guild = discord.Object(id=bot.fake.guild.id)
    tree.copy_global_to(guild=guild)
    await tree.sync(guild=guild)


@contextlib.asynccontextmanager
async def _core(
    settings: Settings, providers: Mapping[str, Provider] | None
) -> AsyncIterator[tuple[ImageService, Worker, Any, SqliteStore, FileMediaStore]]:
    if providers is None:
        async with build_app(settings) as app:
            yield app.service, app.worker, app.router, app.store, app.media
        return
    async with (
        SqliteStore(Path(settings.database_url.removeprefix("sqlite:///"))) as store,
        httpx.AsyncClient() as client,
    ):
        media = FileMediaStore(settings.data_dir / "media")
        service, worker, router = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=media,
            providers=providers,
            routing=list(providers),
            reference_client=client,
            default_policy=ChannelPolicy(max_tolerance="none"),
            concurrency=settings.concurrency,
            idle_poll=0.2,
            position_interval=0.2,
        )
        yield service, worker, router, store, media


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    tmp_path: Path,
    *,
    custom_providers: Mapping[str, Provider] | None = None,
    synced: bool = True,
    progress_interval: float = 2.0,
    message_content: bool = False,
    **overrides: Any,
) -> AsyncIterator[Bot]:
    settings = settings_for(fake, tmp_path, **overrides)
    acks: list[float] = []
    async with _core(settings, custom_providers) as (service, worker, router, store, media):
        adapter = DiscordAdapter.from_settings(
            settings,
            service=service,
            media=media,
            guild_ready_timeout=0.05,
            progress_interval=progress_interval,
            message_content=message_content,
            on_ack=acks.append,
        )
        router.register(adapter.platform, adapter)
        serving = asyncio.create_task(adapter.serve(), name="discord")
        working = asyncio.create_task(worker.run(), name="worker")
        try:
            ready = asyncio.create_task(adapter.client.connected.wait())
            await asyncio.wait([serving, ready], timeout=10, return_when="FIRST_COMPLETED")
            ready.cancel()
            if serving.done():
                serving.result()
                raise AssertionError("the adapter stopped before it was ready")
            assert adapter.client.connected.is_set(), "the adapter did not connect in 10 s"
            bot = Bot(fake, adapter, service, store, media, acks)
            if synced and not fake.commands_for(fake.guild.id):
                await sync(bot)
            yield bot
        finally:
            router.unregister(adapter.platform)
            for task in (serving, working):
                task.cancel()
            for outcome in await asyncio.gather(serving, working, return_exceptions=True):
                if not isinstance(outcome, asyncio.CancelledError | None):
                    raise outcome


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


async def test_connects_syncs_and_answers_imagine(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running_bot(fake, tmp_path) as bot:
        names = {c["name"] for c in fake.commands_for(fake.guild.id)}
        assert names == {
            "imagine",
            "show",
            "Imagine from this",
            "budget",
            "policy",
            "usage",
        }
        imagine = next(c for c in fake.commands_for(fake.guild.id) if c["name"] == "imagine")
        options = {o["name"]: o for o in imagine["options"]}
        assert [o["name"] for o in imagine["options"]][:1] == ["prompt"]
        assert {c["value"] for c in options["model"]["choices"]} == {
            "nano-banana-pro",
            "nano-banana-2",
        }
        assert options["count"]["min_value"] == 1 and options["count"]["max_value"] == 4
        assert options["aspect_ratio"]["autocomplete"] is True
        assert [options[f"ref{i}"]["type"] for i in range(1, 5)] == [11, 11, 11, 11]
        # No privileged intent is requested by default.
        assert not fake.identifies[-1]["intents"] & (1 << 15)

        payload = fake.slash_command("imagine", {"prompt": "a banana on the moon"})
        await asyncio.sleep(0.4)  # the interaction is 0.4 s old when Discord delivers it
        await bot.send(payload)
        message = await bot.result_of(payload["id"])
        assert len(message["attachments"]) == 1
        # The defer was timed from the interaction's snowflake (for /metrics), not from
        # its delivery: the 0.4 s before it count, on top of the fake's delivery-to-ack time.
        [callback] = fake.callbacks_for(payload["id"])
        assert callback.latency is not None and len(bot.acks) == 1
        assert 0.39 <= bot.acks[0] - callback.latency < 1.4
        body = body_of(original_patches(fake, payload)[-1])
        assert json.dumps(body["allowed_mentions"]) == json.dumps({"parse": []})
