"""A child process for the money tests: N concurrent submits against the shared store, then
work until every job it queued has ended. Prints one JSON line of counts.

``python -m tests.procs.cap_load DATABASE_URL --jobs 250 --seed 1 --name p1``

The provider is a stand-in that succeeds or fails by a seeded coin (a third fail) and
reports the catalog price as its cost, so what is tested is the store, service and worker:
reservations, settlements and refunds under contention across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
from pathlib import Path

import httpx

from bot.app import assemble_core
from bot.catalog import default_catalog
from bot.errors import BudgetExceeded, ProviderUnavailable
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)
from bot.media.store import FileMediaStore
from bot.models import ImageRequest, JobStatus, Origin
from bot.policy import ChannelPolicy
from bot.storage import store_from_url
from tests.fakes.provider import png_bytes

PNG = png_bytes(8, 8)


class Coin:
    """Implements :class:`bot.interfaces.Provider`; fails a seeded third of the jobs after
    it "accepted" them (sent=True, so no failover), reporting the catalog price otherwise."""

    name = "coin"
    capabilities = ProviderCapabilities(models=frozenset({"nano-banana-2"}), reports_cost=True)

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        await on_task_id(f"coin-{task.job_id}")
        return await self.resume(task, "")

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        await asyncio.sleep(self._random.uniform(0.0, 0.02))
        if self._random.random() < 1 / 3:
            raise ProviderUnavailable("coin", "the coin came up tails", sent=True)
        price = default_catalog().estimate_micros(task.request, task.size)
        return GenerationResult(images=(GeneratedImage(data=PNG),), cost_micros=price)


async def main(url: str, jobs: int, seed: int, name: str, media: Path) -> dict[str, int]:
    async with store_from_url(url) as store, httpx.AsyncClient() as client:
        service, worker, _ = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=FileMediaStore(media),
            providers={"coin": Coin(seed)},
            routing=["coin"],
            reference_client=client,
            default_policy=ChannelPolicy(),
            concurrency=16,
            idle_poll=0.05,
            position_interval=60,
        )
        origin = Origin(platform="load", workspace_id="ws", channel_id="c", user_id=name)

        async def submit(index: int) -> str | None:
            try:
                result = await service.submit(
                    ImageRequest(prompt=f"load test image {index}"),
                    origin,
                    idempotency_key=f"{name}-{index}",
                )
            except BudgetExceeded:
                return None
            return result.job.id

        ids = await asyncio.gather(*(submit(i) for i in range(jobs)))
        mine = {job_id for job_id in ids if job_id is not None}
        working = asyncio.create_task(worker.run())
        try:
            while True:
                statuses = [(await store.get_job(job_id)).status for job_id in mine]
                if all(s in (JobStatus.SUCCEEDED, JobStatus.FAILED) for s in statuses):
                    break
                await asyncio.sleep(0.1)
        finally:
            # Other processes' jobs this worker claimed must end here: a worker cancelled
            # mid-job leaves it for a lease to recover.
            await worker.drain()
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
        return {
            "accepted": len(mine),
            "refused": jobs - len(mine),
            "succeeded": statuses.count(JobStatus.SUCCEEDED),
            "failed": statuses.count(JobStatus.FAILED),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--jobs", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="p1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as media:
        counts = asyncio.run(main(args.url, args.jobs, args.seed, args.name, Path(media)))
    print(json.dumps(counts), file=sys.stdout, flush=True)
