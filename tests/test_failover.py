"""Failover: a job its provider never received moves on; one it may have received stays."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import assemble_core
from bot.catalog import default_catalog
from bot.interfaces import Provider
from bot.media.store import FileMediaStore
from bot.models import ImageRequest, JobStatus
from bot.policy import ChannelPolicy
from bot.providers.runbase import RunbaseProvider, shared_limiter
from bot.providers.runflow import RunflowProvider
from bot.providers.runware.client import RunwareProvider
from bot.storage import SqliteStore
from tests.conftest import Recorder, origin
from tests.fakes.provider import ScriptedProvider
from tests.fakes.runbase import RunbaseEmulator
from tests.fakes.runflow import RunflowEmulator
from tests.fakes.runware import RunwareEmulator


@pytest.fixture
async def emulator() -> AsyncIterator[RunwareEmulator]:
    async with RunwareEmulator(api_key="k") as emu:
        yield emu


async def run_one(
    tmp_path: Path, runware_url: str, deadline: float
) -> tuple[str, ScriptedProvider, str]:
    """Submit one job with routing [runware, spare]; return its final status, the spare
    provider, and the provider that holds the job at the end."""

    def runware(http: httpx.AsyncClient) -> Provider:
        return RunwareProvider(
            api_key="k", api_url=runware_url, client=http, attempts=2, retry_timeout=2,
            poll_initial=0.01, poll_max=0.05, deadline=deadline,
        )  # fmt: skip

    return await run_with_spare(tmp_path, "runware", runware)


async def run_with_spare(
    tmp_path: Path,
    name: str,
    primary: Callable[[httpx.AsyncClient], Provider],
    *,
    client_timeout: float = 2.0,
) -> tuple[str, ScriptedProvider, str]:
    """Submit one job with routing [``name``, spare]; return its final status, the spare
    provider, and the provider that holds the job at the end. The books must balance."""
    spare = ScriptedProvider(name="spare")
    async with (
        SqliteStore(tmp_path / "f.db") as store,
        httpx.AsyncClient(timeout=client_timeout) as http,
    ):
        service, worker, router = assemble_core(
            catalog=default_catalog(), store=store, media=FileMediaStore(tmp_path / "m"),
            providers={name: primary(http), "spare": spare}, routing=[name, "spare"],
            reference_client=http, default_policy=ChannelPolicy(), concurrency=1,
            idle_poll=0.05,
        )  # fmt: skip
        recorder = Recorder()
        router.register("test", recorder)
        task = asyncio.create_task(worker.run())
        try:
            submitted = await service.submit(
                ImageRequest(prompt="a lighthouse"), origin(), idempotency_key="k"
            )
            assert submitted.job.provider == name
            async with asyncio.timeout(20):
                while not any(
                    u.job.id == submitted.job.id and u.kind in ("done", "failed")
                    for u in recorder.updates
                ):
                    await asyncio.sleep(0.02)
            job = await store.get_job(submitted.job.id)
            totals = await store.ledger_totals()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert totals["reserve"] + totals["release"] == 0
    return job.status.value, spare, job.provider


async def test_a_provider_that_refuses_connections_hands_the_job_to_the_next(
    tmp_path: Path,
) -> None:
    # Nothing listens on this port: every try is refused before a byte is sent.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    status, spare, provider = await run_one(tmp_path, f"http://127.0.0.1:{closed_port}/", 10)
    assert (status, provider) == (JobStatus.SUCCEEDED.value, "spare")
    assert len(spare.calls) == 1


async def test_a_provider_that_accepted_the_job_keeps_it_even_when_it_is_slow(
    tmp_path: Path, emulator: RunwareEmulator
) -> None:
    emulator.processing_delay = 5.0
    status, spare, provider = await run_one(tmp_path, emulator.base_url, 0.5)
    assert (status, provider) == (JobStatus.FAILED.value, "runware")
    assert spare.calls == []
    assert len(emulator.tasks) == 1 and len(emulator.charges) == 1


async def test_a_provider_that_rate_limits_the_create_hands_the_job_to_the_next(
    tmp_path: Path, emulator: RunwareEmulator
) -> None:
    # Both tries of the create answer 429: Runware refused the task, so it may go elsewhere.
    emulator.fail_next(429, 2, retry_after=0.01, task_type="imageInference")
    status, spare, provider = await run_one(tmp_path, emulator.base_url, 10)
    assert (status, provider) == (JobStatus.SUCCEEDED.value, "spare")
    assert len(spare.calls) == 1
    assert emulator.tasks == {} and emulator.charges == []


async def test_a_5xx_on_a_runware_create_keeps_the_job_there(
    tmp_path: Path, emulator: RunwareEmulator
) -> None:
    # Runware's taskUUID is ours: after a 5xx the task may exist, so the job is not sent
    # elsewhere (it fails and is refunded instead of risking a second payment).
    emulator.fail_next(503, 2, task_type="imageInference")
    status, spare, provider = await run_one(tmp_path, emulator.base_url, 10)
    assert (status, provider) == (JobStatus.FAILED.value, "runware")
    assert spare.calls == []


async def test_a_5xx_on_a_runflow_create_hands_the_job_to_the_next(tmp_path: Path) -> None:
    # Runflow assigns the run id in its answer: a 5xx answer means no run exists.
    async with RunflowEmulator(api_key="rf") as emulator:
        emulator.fail_next(503, 3)  # every try
        status, spare, provider = await run_with_spare(
            tmp_path, "runflow", lambda http: run_api("runflow", emulator, http)
        )
    assert (status, provider) == (JobStatus.SUCCEEDED.value, "spare")
    assert len(spare.calls) == 1 and emulator.runs == {}


def run_api(
    name: str, emulator: RunflowEmulator | RunbaseEmulator, http: httpx.AsyncClient
) -> Provider:
    common: dict[str, Any] = dict(
        api_key=emulator.api_key, api_url=emulator.base_url, client=http, attempts=3,
        retry_timeout=5, poll_initial=0.01, poll_max=0.05,
    )  # fmt: skip
    if name == "runflow":
        return RunflowProvider(**common)
    return RunbaseProvider(limiter=shared_limiter(20, 10), **common)


@pytest.mark.parametrize("name", ["runflow", "runbase"])
async def test_a_lost_create_answer_is_never_sent_again_nor_elsewhere(
    tmp_path: Path, name: str
) -> None:
    """Runflow and Runbase take no idempotency key: a create whose answer was lost may
    have made a run, so it is neither repeated nor failed over; the job is refunded."""
    kind = RunflowEmulator if name == "runflow" else RunbaseEmulator
    async with kind(api_key="rk") as emulator:
        emulator.fail_next("hang", seconds=2.0, process_first=True, on="create")
        status, spare, provider = await run_with_spare(
            tmp_path, name, lambda http: run_api(name, emulator, http), client_timeout=0.5
        )
        assert len(emulator.charges) == 1, "the create was sent again"
    assert (status, provider) == (JobStatus.FAILED.value, name)
    assert spare.calls == []


async def test_a_poll_that_cannot_connect_keeps_the_job_with_its_provider(
    tmp_path: Path,
) -> None:
    """Runware accepted the task, then went away: polls are refused, but the job must not
    move on (it would be paid twice); it fails and is refunded."""
    emulator = RunwareEmulator(api_key="k", processing_delay=3600)
    await emulator.__aenter__()
    try:
        working = asyncio.create_task(run_one(tmp_path, emulator.base_url, 10))
        async with asyncio.timeout(20):
            while not emulator.tasks:
                await asyncio.sleep(0.01)
    finally:
        await emulator.__aexit__(None, None, None)  # every later poll is refused
    status, spare, provider = await working
    assert (status, provider) == (JobStatus.FAILED.value, "runware")
    assert spare.calls == [] and len(emulator.charges) == 1
