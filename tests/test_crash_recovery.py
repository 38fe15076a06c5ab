"""kill -9: 50 jobs in flight against a slow Runware emulator, ``bananabot worker`` killed
with SIGKILL, then started again. Every job ends succeeded (its images stored) or refunded,
the emulator saw each task created exactly once, and nobody is charged twice. On SQLite
and on PostgreSQL. And the graceful stop: SIGINT lets running jobs finish.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from bot.app import build_app
from bot.models import ImageRequest, Job, JobStatus, Origin
from bot.settings import Settings
from bot.storage import SqliteStore, Store, sqlite_path, store_from_url
from tests.fakes.runware import RunwareEmulator
from tests.pg import fresh_schema
from tests.procs import bot_env

JOBS = 50
KEY = "rw-crash-key"

pytestmark = pytest.mark.timeout(240)


def worker_env(url: str, emulator: RunwareEmulator, tmp_path: Path) -> dict[str, str]:
    """``bananabot worker`` on ``url`` with Runware (the emulator) as its only provider."""
    return bot_env(
        tmp_path,
        url,
        RUNWARE_API_KEY=KEY,
        RUNWARE_API_URL=emulator.base_url,
        BANANABOT_PROVIDERS="runware",
        BANANABOT_CONCURRENCY="64",
        BANANABOT_POLL_INITIAL="0.2",
        BANANABOT_POLL_MAX="0.5",
        # PostgreSQL: a restarted process takes over jobs untouched for this long (SQLite's
        # file lock makes every running job found at start its own).
        BANANABOT_WORKER_LEASE="5",
    )


def reader(url: str) -> AbstractAsyncContextManager[Store]:
    """A store for looking while ``bananabot worker`` runs (SQLite: without the lock)."""
    if url.startswith("sqlite"):
        return SqliteStore(sqlite_path(url), exclusive=False)
    return store_from_url(url)


async def all_jobs(store: Store) -> list[Job]:
    return [
        job
        for status in ("queued", "running", "succeeded", "failed", "cancelled")
        for job in await store.jobs_in_status(status, 1000)
    ]


async def wait_until(check: Callable[[], object], seconds: float, what: str) -> None:
    """Poll ``check`` until true.

    Raises:
        AssertionError: naming ``what``, after ``seconds``.
    """
    try:
        async with asyncio.timeout(seconds):
            while not check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {seconds:g} s: {what}") from None


async def stopping(worker: asyncio.subprocess.Process) -> None:
    """Wait until ``worker`` logs that it is shutting down (it handled the signal)."""
    assert worker.stderr is not None
    async with asyncio.timeout(30):
        while b"shutting down" not in await worker.stderr.readline():
            pass


def creates(emulator: RunwareEmulator) -> Counter[str]:
    """taskUUID -> imageInference requests that created it."""
    counted: Counter[str] = Counter()
    for request in emulator.requests:
        for task in request.body if isinstance(request.body, list) else []:
            if isinstance(task, dict) and task.get("taskType") == "imageInference":
                counted[str(task.get("taskUUID"))] += 1
    return counted


async def queue_jobs(env: dict[str, str], jobs: int) -> None:
    """Submit ``jobs`` one-image jobs through the service, with the settings in ``env``."""
    settings = Settings(_env_file=None, **{k: v for k, v in env.items() if k.isupper()})
    async with build_app(settings) as app:
        origin = Origin(platform="cli", workspace_id="ws", channel_id="c", user_id="u")
        for index in range(jobs):
            await app.service.submit(
                ImageRequest(prompt=f"crash test image {index}"),
                origin,
                idempotency_key=f"crash-{index}",
            )


@asynccontextmanager
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{tmp_path}/crash.db"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_kill_9_with_50_jobs_in_flight_loses_nothing_and_pays_once(
    backend: str, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path) if backend == "sqlite" else fresh_schema()
    # Tasks finish only once released: the kill catches every created one in flight.
    async with database as url, RunwareEmulator(api_key=KEY, processing_delay=3600) as emulator:
        env = worker_env(url, emulator, tmp_path)
        await queue_jobs(env, JOBS)
        command = [sys.executable, "-m", "bot.cli", "worker"]
        first = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            # Wait until most jobs are at the provider (created, not finished), then kill.
            await wait_until(lambda: len(creates(emulator)) >= 40, 60, "the worker sent 40 tasks")
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert first.returncode == -signal.SIGKILL
        async with reader(url) as store:
            jobs = await all_jobs(store)
        in_flight = [j for j in jobs if j.status is JobStatus.RUNNING]
        assert len(in_flight) >= 40, "the kill should catch jobs mid-flight"
        emulator.processing_delay = 0
        emulator.release_all()
        # Every task the emulator received had its taskUUID stored first (so it is resumed
        # by polling, never created again).
        assert set(creates(emulator)) <= {j.provider_task_id for j in jobs}

        second = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            async with reader(url) as store:
                finished: list[Job] = []

                async def poll() -> None:
                    while True:
                        finished[:] = await all_jobs(store)
                        if all(
                            j.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) for j in finished
                        ):
                            return
                        await asyncio.sleep(0.2)

                async with asyncio.timeout(120):
                    await poll()
                totals = await store.ledger_totals()
                results = {j.id: await store.get_results(j.id) for j in finished}
        finally:
            second.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                _, err = await second.communicate()
        assert second.returncode == 0, err.decode()[-3000:]

        assert len(finished) == JOBS
        made = creates(emulator)
        assert len(made) == JOBS, "every job reached the provider once"
        assert set(made.values()) == {1}, f"tasks created more than once: {made.most_common(3)}"
        succeeded = [j for j in finished if j.status is JobStatus.SUCCEEDED]
        failed = [j for j in finished if j.status is JobStatus.FAILED]
        assert all(len(results[j.id]) == j.request.number_results for j in succeeded)
        assert all(not results[j.id] and j.cost_micros == 0 for j in failed)
        # Nobody charged twice: the ledger holds one charge per succeeded job, summing to
        # exactly what the emulator charged, and every reservation was released.
        assert totals.get("charge", 0) == sum(j.cost_micros for j in succeeded)
        assert len(emulator.charges) == len(succeeded) == JOBS
        assert totals["reserve"] + totals["release"] == 0


async def worker_with_jobs(
    url: str, emulator: RunwareEmulator, tmp_path: Path, jobs: int, grace: str
) -> asyncio.subprocess.Process:
    """Queue ``jobs`` jobs, then start ``bananabot worker`` (3 at once, the given
    ``BANANABOT_SHUTDOWN_GRACE``) with its stderr piped."""
    env = worker_env(url, emulator, tmp_path)
    env.update(BANANABOT_CONCURRENCY="3", BANANABOT_SHUTDOWN_GRACE=grace)
    await queue_jobs(env, jobs)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "worker", cwd=tmp_path, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_sigint_lets_running_jobs_finish_and_takes_no_new_ones(tmp_path: Path) -> None:
    """A graceful stop (``docker stop``): jobs at the provider end and are settled before
    the process exits; queued jobs stay queued for the next start."""
    url = f"sqlite:///{tmp_path}/stop.db"
    async with RunwareEmulator(api_key=KEY, processing_delay=3600) as emulator:
        worker = await worker_with_jobs(url, emulator, tmp_path, jobs=6, grace="30")
        try:
            await wait_until(lambda: len(creates(emulator)) >= 3, 60, "three tasks were sent")
            worker.send_signal(signal.SIGINT)
            await stopping(worker)
            emulator.release_all()  # the provider finishes them during the grace
            async with asyncio.timeout(60):
                _, err = await worker.communicate()
        finally:
            if worker.returncode is None:  # a failure above: leave no process behind
                worker.kill()
                await worker.wait()
        assert worker.returncode == 0, err.decode()[-3000:]
        async with reader(url) as store:
            jobs = await all_jobs(store)
    statuses = Counter(job.status for job in jobs)
    assert statuses == {JobStatus.SUCCEEDED: 3, JobStatus.QUEUED: 3}, statuses
    assert len(creates(emulator)) == 3, "a stopping worker sent a new task"


async def test_a_second_sigint_stops_at_once_leaving_jobs_for_recovery(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hurry.db"
    async with RunwareEmulator(api_key=KEY, processing_delay=3600) as emulator:
        worker = await worker_with_jobs(url, emulator, tmp_path, jobs=3, grace="120")
        try:
            await wait_until(lambda: len(creates(emulator)) >= 3, 60, "three tasks were sent")
            worker.send_signal(signal.SIGINT)
            await stopping(worker)
        finally:
            worker.send_signal(signal.SIGINT)
            async with asyncio.timeout(60):
                _, err = await worker.communicate()
        assert worker.returncode == 0, err.decode()[-3000:]
        async with reader(url) as store:
            jobs = await all_jobs(store)
    # Stopped before the provider finished: the jobs keep their task ids for the next start.
    assert [job.status for job in jobs] == [JobStatus.RUNNING] * 3
    assert all(job.provider_task_id for job in jobs)
