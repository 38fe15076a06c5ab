"""Failover: a job its provider never received moves on; one it may have received stays."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.app import assemble_core
from bot.catalog import default_catalog
from bot.interfaces import Provider
from bot.media.store import FileMediaStore
from bot.models import ImageRequest, JobStatus
from bot.policy import ChannelPolicy
from bot.providers.runflow import RunflowProvider
from bot.providers.runware.client import RunwareProvider
from bot.storage import SqliteStore
from tests.conftest import Recorder, origin
from tests.fakes.provider import ScriptedProvider
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
    spare = ScriptedProvider(name="spare")
    async with SqliteStore(tmp_path / "f.db") as store, httpx.AsyncClient(timeout=2) as http:
        providers: dict[str, Provider] = {
            "runware": RunwareProvider(
                api_key="k",
                api_url=runware_url,
                client=http,
                attempts=2,
                retry_timeout=2,
                poll_initial=0.01,
                poll_max=0.05,
                deadline=deadline,
            ),
            "spare": spare,
        }
        service, worker, router = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=FileMediaStore(tmp_path / "m"),
            providers=providers,
            routing=["runware", "spare"],
            reference_client=http,
            default_policy=ChannelPolicy(),
            concurrency=1,
            idle_poll=0.05,
        )
        recorder = Recorder()
        router.register("test", recorder)
        task = asyncio.create_task(worker.run())
        try:
            submitted = await service.submit(
                ImageRequest(prompt="a lighthouse"), origin(), idempotency_key="k"
            )
            assert submitted.job.provider == "runware"
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
    spare = ScriptedProvider(name="spare")
    async with (
        RunflowEmulator(api_key="rf") as runflow_emulator,
        SqliteStore(tmp_path / "rf.db") as store,
        httpx.AsyncClient(timeout=2) as http,
    ):
        runflow_emulator.fail_next(503, 2)
        runflow = RunflowProvider(
            api_key="rf", api_url=runflow_emulator.base_url, client=http, attempts=2,
            retry_timeout=2, poll_initial=0.01, poll_max=0.05,
        )  # fmt: skip
        service, worker, router = assemble_core(
            catalog=default_catalog(), store=store, media=FileMediaStore(tmp_path / "m"),
            providers={"runflow": runflow, "spare": spare}, routing=["runflow", "spare"],
            reference_client=http, default_policy=ChannelPolicy(), concurrency=1,
            idle_poll=0.05,
        )  # fmt: skip
        recorder = Recorder()
        router.register("test", recorder)
        task = asyncio.create_task(worker.run())
        try:
            submitted = await service.submit(
                ImageRequest(prompt="a lighthouse"), origin(), idempotency_key="rf"
            )
            assert submitted.job.provider == "runflow"
            done = await recorder.wait_for(submitted.job.id, "done")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert done.job.provider == "spare" and len(spare.calls) == 1
        assert runflow_emulator.runs == {}
