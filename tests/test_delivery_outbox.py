"""Nothing lost between finishing and posting: the delivery outbox and its pump.

A job finished by another process (``bananabot worker`` beside ``bananabot run``), or while
its adapter was down, reaches its person once: the process with the adapter leases it,
delivers it and marks it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.app import assemble_core
from bot.catalog import default_catalog
from bot.delivery import DeliveryPump, DeliveryRouter
from bot.errors import ProviderRejected
from bot.media.store import FileMediaStore
from bot.models import Done, Failed, Generating, ImageRequest, JobStatus, JobUpdate
from bot.policy import ChannelPolicy
from bot.storage import store_from_url
from tests.conftest import Core, Recorder, origin
from tests.fakes.provider import ScriptedProvider
from tests.pg import fresh_schema


async def run_until_finished(core: Core, job_ids: list[str]) -> None:
    worker = asyncio.create_task(core.worker.run())
    try:
        async with asyncio.timeout(20):
            while True:
                jobs = [await core.store.get_job(job_id) for job_id in job_ids]
                if all(j.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) for j in jobs):
                    return
                await asyncio.sleep(0.02)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def test_results_that_finished_while_the_adapter_was_away_are_posted_once(
    core: Core, scripted: ScriptedProvider
) -> None:
    scripted.outcome = lambda task: (
        ProviderRejected("scripted", "no", 400) if "fail" in task.request.prompt else None
    )
    ok = await core.service.submit(
        ImageRequest(prompt="a red barn"), origin(), idempotency_key="k1"
    )
    bad = await core.service.submit(
        ImageRequest(prompt="please fail"), origin(), idempotency_key="k2"
    )
    core.recorder.updates.clear()
    # core's router has the store as its outbox; its "test" adapter goes away.
    router = core.router
    router.unregister("test")
    await run_until_finished(core, [ok.job.id, bad.job.id])
    assert core.recorder.updates == []

    router.register("test", core.recorder)
    pump = DeliveryPump(router=router, outbox=core.store, reader=core.store, ledger=core.store)
    assert await pump.deliver_pending() == 2
    kinds = {u.job.id: u for u in core.recorder.updates}
    done, failed = kinds[ok.job.id], kinds[bad.job.id]
    assert isinstance(done, Done) and len(done.images) == 1
    assert isinstance(failed, Failed) and failed.refunded_micros == bad.job.estimate_micros
    assert failed.error_code == "provider_rejected"
    # Delivered means delivered: another pass (or process) posts nothing again.
    assert await pump.deliver_pending() == 0
    assert len(core.recorder.updates) == 2


async def test_a_failing_adapter_gets_the_result_again_after_the_lease(
    core: Core,
) -> None:
    job = (
        await core.service.submit(ImageRequest(prompt="a red barn"), origin(), idempotency_key="k")
    ).job

    refused = asyncio.Event()

    class Flaky(Recorder):
        failures = 1

        async def on_update(self, update: JobUpdate) -> None:
            if update.kind == "done" and self.failures:
                self.failures -= 1
                refused.set()
                raise RuntimeError("Slack is down")
            await super().on_update(update)

    flaky = Flaky()
    router = core.router
    router.register("test", flaky)
    worker = asyncio.create_task(core.worker.run())
    try:
        # The job ends in the store before its delivery is tried: wait for the refusal.
        async with asyncio.timeout(20):
            await refused.wait()
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert (await core.store.get_job(job.id)).status is JobStatus.SUCCEEDED
    assert not [u for u in flaky.updates if u.kind == "done"]
    # A pump run under a clock past the lease retries and succeeds.
    later = DeliveryRouter(outbox=core.store, clock=lambda: _hours_later(1))
    later.register("test", flaky)
    pump = DeliveryPump(
        router=later, outbox=core.store, reader=core.store, ledger=core.store,
        clock=lambda: _hours_later(1),
    )  # fmt: skip
    assert await pump.deliver_pending() == 1
    assert [u.kind for u in flaky.updates if u.job.id == job.id][-1] == "done"


def _hours_later(hours: int) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def test_a_job_worked_by_another_process_is_posted_by_the_adapter_process(
    tmp_path: Path,
) -> None:
    """PostgreSQL: a worker-only instance runs the job; the adapter instance says
    "generating" while it runs, once, and posts the result."""
    provider = ScriptedProvider(gate=asyncio.Event())
    async with (
        fresh_schema() as url,
        store_from_url(url) as adapter_store,
        store_from_url(url) as worker_store,
        httpx.AsyncClient() as client,
    ):
        common = dict(
            catalog=default_catalog(), media=FileMediaStore(tmp_path), routing=["scripted"],
            providers={"scripted": provider}, reference_client=client,
            default_policy=ChannelPolicy(), concurrency=2, idle_poll=0.05, lease=5.0,
        )  # fmt: skip
        service, _, adapter_router = assemble_core(store=adapter_store, **common)  # type: ignore[arg-type]
        _, worker, _ = assemble_core(store=worker_store, **common)  # type: ignore[arg-type]
        recorder = Recorder()
        adapter_router.register("test", recorder)
        pump = DeliveryPump(
            router=adapter_router, outbox=adapter_store, reader=adapter_store,
            ledger=adapter_store, interval=0.05,
        )  # fmt: skip
        tasks = [asyncio.create_task(worker.run()), asyncio.create_task(pump.run())]
        try:
            submitted = await service.submit(
                ImageRequest(prompt="a red barn"), origin(), idempotency_key="k"
            )
            await recorder.wait_for(submitted.job.id, "generating")
            await asyncio.sleep(0.3)  # several pump passes while it runs
            assert provider.gate is not None
            provider.gate.set()
            done = await recorder.wait_for(submitted.job.id, "done")
            await asyncio.sleep(0.3)  # several more pump passes
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert isinstance(done, Done) and done.job.status is JobStatus.SUCCEEDED
        assert [u.kind for u in recorder.updates if u.kind != "queued"] == ["generating", "done"]
        assert await adapter_store.undelivered(["test"], _hours_later(0), 10) == []


async def test_the_pump_adds_no_progress_for_jobs_this_process_runs(
    core: Core, scripted: ScriptedProvider
) -> None:
    """One process: the worker's own "generating" went through the router, so the pump
    says nothing more; and a "generating" read before the job ended never follows its
    result."""
    scripted.gate = asyncio.Event()
    job = (
        await core.service.submit(ImageRequest(prompt="a red barn"), origin(), idempotency_key="k")
    ).job
    pump = DeliveryPump(router=core.router, outbox=core.store, reader=core.store, ledger=core.store)
    worker = asyncio.create_task(core.worker.run())
    try:
        await core.recorder.wait_for(job.id, "generating")
        assert await pump.report_running() == 0
        stale = await core.store.get_job(job.id)  # read as running, before the end
        scripted.gate.set()
        await core.recorder.wait_for(job.id, "done")
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    await core.router.on_update(Generating(job=stale, provider=stale.provider))
    kinds = [kind for kind in core.recorder.kinds(job.id) if kind != "queued"]
    assert kinds == ["generating", "done"]
