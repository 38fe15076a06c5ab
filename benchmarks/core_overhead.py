"""Core overhead per job with a zero-latency provider: submit to delivered, through SQLite.

Run: ``.venv/bin/python benchmarks/core_overhead.py [--jobs 2000] [--latency-jobs 500]``.

Two measurements on the real core (SQLite store in a temp folder, file media store, worker,
service, delivery router) with a provider that answers at once with a 64x64 PNG:

* latency: one job at a time, ``submit()`` call to the ``Done`` update reaching the delivery
  (median and p99, milliseconds). This is the core's own overhead: validation, policy,
  reservation, claim, task-id write, media write, settlement, budget read, delivery.
* throughput: ``--jobs`` jobs submitted at once by 50 users; jobs per second from the first
  submit to the last ``Done``.

A workspace cap and a channel cap apply to every job (``--no-caps`` to measure without).

Prints a Markdown table row per measurement, with the date and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
from PIL import Image

from bot.app import assemble_core
from bot.budgets import BudgetCap, CapScope, Period
from bot.catalog import default_catalog
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)
from bot.media.store import FileMediaStore
from bot.models import ImageRequest, JobUpdate, Origin
from bot.policy import ChannelPolicy
from bot.service import utcnow
from bot.storage import SqliteStore


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


class InstantProvider:
    """Answers every generation at once with the same small PNG and a fixed cost."""

    name = "instant"
    capabilities = ProviderCapabilities(models=frozenset({"nano-banana-pro", "nano-banana-2"}))

    def __init__(self) -> None:
        self._image = _png()
        self._counter = 0

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        self._counter += 1
        await on_task_id(f"instant-{self._counter}")
        return GenerationResult(
            images=(GeneratedImage(self._image, seed=1, cost_micros=60_000),), cost_micros=60_000
        )

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        return await self.generate(task, lambda _id: asyncio.sleep(0))


class Timings:
    """Delivery that timestamps each job's Done."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}

    async def on_update(self, update: JobUpdate) -> None:
        if update.kind in ("done", "failed"):
            self.done[update.job.id] = time.perf_counter()
            self.events.setdefault(update.job.id, asyncio.Event()).set()


async def run(jobs: int, latency_jobs: int, concurrency: int, no_caps: bool) -> list[str]:
    catalog = default_catalog()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        async with SqliteStore(root / "bench.db") as store, httpx.AsyncClient() as client:
            timings = Timings()
            provider = InstantProvider()
            service, worker, router = assemble_core(
                catalog=catalog,
                store=store,
                media=FileMediaStore(root / "media"),
                providers={"instant": provider},
                routing=["instant"],
                reference_client=client,
                default_policy=ChannelPolicy(max_tolerance="none"),
                concurrency=concurrency,
                idle_poll=0.5,
            )
            router.register("bench", timings)
            for scope, scope_id in (
                () if no_caps else ((CapScope.WORKSPACE, "bench"), (CapScope.CHANNEL, "c"))
            ):
                await store.set_cap(
                    BudgetCap(
                        scope=scope,
                        workspace_id="bench",
                        scope_id=scope_id,
                        period=Period.DAY,
                        limit_micros=10**12,
                    ),
                    utcnow(),
                )
            request = ImageRequest(
                prompt="a lighthouse at dusk", aspect_ratio="16:9", resolution="1K"
            )
            worker_task = asyncio.create_task(worker.run())
            try:
                latencies = []
                for i in range(latency_jobs):
                    origin = Origin(
                        platform="bench", workspace_id="bench", channel_id="c", user_id=f"u{i % 50}"
                    )
                    started = time.perf_counter()
                    submitted = await service.submit(request, origin, idempotency_key=f"l{i}")
                    event = timings.events.setdefault(submitted.job.id, asyncio.Event())
                    await event.wait()
                    latencies.append((timings.done[submitted.job.id] - started) * 1000)
                started = time.perf_counter()
                submitted_ids = await asyncio.gather(
                    *(
                        service.submit(
                            request,
                            Origin(
                                platform="bench",
                                workspace_id="bench",
                                channel_id="c",
                                user_id=f"u{i % 50}",
                            ),
                            idempotency_key=f"t{i}",
                        )
                        for i in range(jobs)
                    )
                )
                for s in submitted_ids:
                    await timings.events.setdefault(s.job.id, asyncio.Event()).wait()
                elapsed = max(timings.done[s.job.id] for s in submitted_ids) - started
            finally:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    machine = f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}"
    return [
        f"| {date.today()} | {machine} | submit → delivered, one at a time ({latency_jobs} jobs) "
        f"| median {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms |",
        f"| {date.today()} | {machine} | throughput, {jobs} jobs at once, 50 users, "
        f"concurrency {concurrency} | {jobs / elapsed:.0f} jobs/s |",
    ]


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-caps", action="store_true", help="no budget caps (default: two)")
    args = parser.parse_args()
    print("| date | machine | measurement | result |")
    print("|---|---|---|---|")
    for row in asyncio.run(run(args.jobs, args.latency_jobs, args.concurrency, args.no_caps)):
        print(row)


if __name__ == "__main__":
    main()
