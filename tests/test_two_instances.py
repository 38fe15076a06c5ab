"""Two bananabot instances on one PostgreSQL database share the queue and the budgets.

Two ``bananabot worker`` processes run against one schema and a slow Runware emulator;
jobs are submitted through two separate services (as two adapter processes would) against
one workspace cap. Both workers take jobs (their own ``/metrics`` say how many), every job
is created at the provider once, and the cap holds across both submitters.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import assemble_core, build_app
from bot.budgets import BudgetCap, CapScope, Period
from bot.catalog import default_catalog
from bot.errors import BudgetExceeded
from bot.media.store import FileMediaStore
from bot.models import ImageRequest, JobStatus, Origin
from bot.policy import ChannelPolicy
from bot.service import ImageService
from bot.settings import Settings
from bot.storage import Store, store_from_url
from bot.worker import Worker
from tests.conftest import Recorder, origin
from tests.fakes.provider import ScriptedProvider
from tests.fakes.runware import RunwareEmulator
from tests.pg import fresh_schema
from tests.procs import WorkerProcess
from tests.test_crash_recovery import KEY, all_jobs, creates, worker_env

pytestmark = pytest.mark.timeout(180)
ESTIMATE = 68_950  # Nano Banana 2, 1K, one image (catalog)
ROOM = 30  # the cap has room for 30 jobs
LEASE = 4.0
"""Seconds; A touches its job every second, so only a 3 s stall could lose it to B."""


def provider_calls(url: str) -> float:
    """Provider calls this worker made, from its own ``/metrics``."""
    page = httpx.get(url + "metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "bananabot_provider_call_seconds_count"
    )


async def test_two_instances_share_the_queue_and_the_cap(tmp_path: Path) -> None:
    async with fresh_schema() as url, RunwareEmulator(api_key=KEY, processing_delay=0.5) as emu:
        env = worker_env(url, emu, tmp_path)
        env["BANANABOT_CONCURRENCY"] = "4"
        settings = Settings(_env_file=None, **{k: v for k, v in env.items() if k.isupper()})
        async with build_app(settings) as one, build_app(settings) as two:
            await one.store.set_cap(
                BudgetCap(
                    workspace_id="ws",
                    scope=CapScope.WORKSPACE,
                    scope_id="ws",
                    period=Period.DAY,
                    limit_micros=ROOM * ESTIMATE,
                ),
                datetime.now(UTC),
            )
            instances = [WorkerProcess(env, tmp_path), WorkerProcess(env, tmp_path)]
            try:
                for instance in instances:
                    instance.wait_ready()

                async def submit(app_index: int, index: int) -> bool:
                    app = (one, two)[app_index]
                    origin = Origin(
                        platform="cli", workspace_id="ws", channel_id="c", user_id=f"u{index % 3}"
                    )
                    try:
                        await app.service.submit(
                            ImageRequest(prompt=f"shared queue image {index}"),
                            origin,
                            idempotency_key=f"two-{index}",
                        )
                    except BudgetExceeded:
                        return False
                    return True

                accepted = await asyncio.gather(*(submit(i % 2, i) for i in range(50)))
                assert sum(accepted) == ROOM, "the cap holds across both submitters"
                async with asyncio.timeout(90):
                    while True:
                        jobs = await all_jobs(one.store)
                        if all(j.status is JobStatus.SUCCEEDED for j in jobs):
                            break
                        await asyncio.sleep(0.2)
                calls = [provider_calls(instance.url) for instance in instances]
            finally:
                codes = [instance.stop() for instance in instances]
        assert codes == [0, 0]
        assert len(jobs) == ROOM
        assert all(count > 0 for count in calls), f"both instances worked jobs: {calls}"
        assert sum(calls) == ROOM
        made = creates(emu)
        assert len(made) == ROOM and set(made.values()) == {1}


async def test_a_live_instance_keeps_its_jobs_and_a_dead_ones_are_taken_over(
    tmp_path: Path,
) -> None:
    """Leases: while instance A touches its running job, instance B (started later, as in
    a rolling deploy) leaves it alone; once A stops, B takes it over and resumes it by
    polling, so the provider receives it once."""
    async with fresh_schema() as url:
        gate = asyncio.Event()
        provider = ScriptedProvider(name="scripted", gate=gate)
        async with (
            store_from_url(url) as store_a,
            store_from_url(url) as store_b,
            httpx.AsyncClient() as client,
        ):

            def instance(store: Store) -> tuple[ImageService, Worker, Recorder]:
                service, worker, router = assemble_core(
                    catalog=default_catalog(), store=store, media=FileMediaStore(tmp_path),
                    providers={"scripted": provider}, routing=["scripted"],
                    reference_client=client, default_policy=ChannelPolicy(), concurrency=2,
                    idle_poll=0.05, position_interval=60, lease=LEASE,
                )  # fmt: skip
                recorder = Recorder()
                router.register("test", recorder)
                return service, worker, recorder

            service_a, worker_a, _ = instance(store_a)
            _, worker_b, recorder_b = instance(store_b)
            submitted = await service_a.submit(
                ImageRequest(prompt="a lighthouse"), origin(), idempotency_key="lease-1"
            )
            running_a = asyncio.create_task(worker_a.run())
            async with asyncio.timeout(10):
                while not provider.calls:
                    await asyncio.sleep(0.02)
            running_b = asyncio.create_task(worker_b.run())
            try:
                await asyncio.sleep(1.5 * LEASE)  # B must not take a job A touches
                assert not provider.resumed
                assert (await store_b.get_job(submitted.job.id)).status is JobStatus.RUNNING
                running_a.cancel()  # A "dies": the job stays running, with its task id
                with contextlib.suppress(asyncio.CancelledError):
                    await running_a
                gate.set()
                done = await recorder_b.wait_for(submitted.job.id, "done", timeout=5 * LEASE)
            finally:
                running_b.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running_b
        assert done.job.status is JobStatus.SUCCEEDED
        assert len(provider.calls) == 1, "the provider received the job once"
        assert [task_id for _, task_id in provider.resumed] == [done.job.provider_task_id]
