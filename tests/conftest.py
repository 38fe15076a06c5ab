"""Shared fixtures: a real core (SQLite store, media store, worker, service) in a temp folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot.app import assemble_core
from bot.catalog import Catalog, default_catalog
from bot.delivery import DeliveryRouter
from bot.interfaces import Provider
from bot.media.store import FileMediaStore
from bot.models import JobUpdate, Origin
from bot.policy import ChannelPolicy
from bot.service import ImageService
from bot.storage import SqliteStore
from bot.worker import Worker
from tests.fakes.provider import ScriptedProvider
from tests.procs import OUR_PREFIXES


@dataclass
class Recorder:
    """A Delivery that keeps every update it hears."""

    platform: str = "test"
    updates: list[JobUpdate] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_update(self, update: JobUpdate) -> None:
        self.updates.append(update)
        self.changed.set()

    def kinds(self, job_id: str) -> list[str]:
        return [u.kind for u in self.updates if u.job.id == job_id]

    async def wait_for(self, job_id: str, kind: str, timeout: float = 20.0) -> JobUpdate:
        async with asyncio.timeout(timeout):
            while True:
                for update in self.updates:
                    if update.job.id == job_id and update.kind == kind:
                        return update
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Core:
    catalog: Catalog
    store: SqliteStore
    media: FileMediaStore
    service: ImageService
    worker: Worker
    recorder: Recorder
    providers: Mapping[str, Provider]
    router: DeliveryRouter


def origin(user: str = "alice", channel: str = "general", nsfw: bool = False) -> Origin:
    return Origin(
        platform="test",
        workspace_id="ws",
        channel_id=channel,
        user_id=user,
        reply_handle=f"handle-{user}",
        channel_nsfw=nsfw,
    )


@pytest.fixture(autouse=True)
def _no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads a developer's bananabot settings or credentials from the environment
    (a real key would make tests spend money); the test switches (``BANANABOT_TEST_*``,
    ``BANANABOT_REQUIRE_*``) stay."""
    for name in list(os.environ):
        if name.startswith(("BANANABOT_TEST_", "BANANABOT_REQUIRE_")):
            continue
        if name.startswith(OUR_PREFIXES) or name == "DATABASE_URL":
            monkeypatch.delenv(name)


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def core(tmp_path: Path, scripted: ScriptedProvider) -> AsyncIterator[Core]:
    """A real core on SQLite with the scripted provider; workers are not started."""
    catalog = default_catalog()
    async with SqliteStore(tmp_path / "core.db") as store, httpx.AsyncClient() as client:
        media = FileMediaStore(tmp_path / "media")
        providers: dict[str, Provider] = {"scripted": scripted}
        service, worker, router = assemble_core(
            catalog=catalog,
            store=store,
            media=media,
            providers=providers,
            routing=["scripted"],
            reference_client=client,
            default_policy=ChannelPolicy(max_tolerance="off"),
            concurrency=2,
            idle_poll=0.05,
            position_interval=0.01,
        )
        recorder = Recorder()
        router.register("test", recorder)
        yield Core(catalog, store, media, service, worker, recorder, providers, router)


@pytest.fixture
async def running(core: Core) -> AsyncIterator[Core]:
    """The core with its workers running."""
    task = asyncio.create_task(core.worker.run())
    try:
        yield core
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
