"""Spend never passes a cap: 1,000 concurrent submits against a $5 cap, a third of the jobs
failing at the provider. PostgreSQL: four processes; SQLite: one process.

After every process has finished: the settled spend is at most $5, every failed job was
refunded in full, nothing is left held, and the ledger balances (reserved = released +
still held) with the cached cap totals equal to the ledger's sums.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.budgets import BudgetCap, CapScope, Period
from bot.models import JobStatus
from bot.storage import store_from_url
from tests.pg import fresh_schema

ROOT = Path(__file__).resolve().parents[1]
CAP_MICROS = 5_000_000
TOTAL_JOBS = 1_000

pytestmark = pytest.mark.timeout(300)


async def run_children(url: str, processes: int, tmp_path: Path) -> list[dict[str, int]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.procs.cap_load",
            url,
            "--jobs",
            str(TOTAL_JOBS // processes),
            "--seed",
            str(index),
            "--name",
            f"p{index}",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for index in range(processes)
    ]
    results = []
    try:
        for child in children:
            out, err = await child.communicate()
            assert child.returncode == 0, err.decode()[-3000:]
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.returncode is None:  # a failure or timeout above: leave no process
                child.kill()
                await child.communicate()
    return results


async def check_the_books(url: str, counts: list[dict[str, int]]) -> None:
    accepted = sum(c["accepted"] for c in counts)
    assert sum(c["accepted"] + c["refused"] for c in counts) == TOTAL_JOBS
    # The cap was the limit: most submits were refused, and some jobs did fail.
    assert sum(c["refused"] for c in counts) > TOTAL_JOBS // 2
    assert sum(c["failed"] for c in counts) > 0
    async with store_from_url(url) as store:
        totals = await store.ledger_totals()
        reserved, released, charged = (totals.get(k, 0) for k in ("reserve", "release", "charge"))
        assert charged <= CAP_MICROS, f"spent {charged} micro-dollars past a 5,000,000 cap"
        jobs = [
            job
            for status in ("queued", "running", "succeeded", "failed", "cancelled")
            for job in await store.jobs_in_status(status, 100_000)
        ]
        assert len(jobs) == accepted
        assert {job.status for job in jobs} <= {JobStatus.SUCCEEDED, JobStatus.FAILED}
        assert sum(j.cost_micros for j in jobs if j.status is JobStatus.SUCCEEDED) == charged
        assert all(j.cost_micros == 0 for j in jobs if j.status is JobStatus.FAILED)
        # Every job's reservation was released (succeeded: settled; failed: refunded).
        assert reserved == sum(j.estimate_micros for j in jobs)
        assert reserved + released == 0, "money is still held after every job ended"
        assert await store.verify_totals(datetime.now(UTC)) == []


async def set_cap(url: str) -> None:
    async with store_from_url(url) as store:
        cap = BudgetCap(
            workspace_id="ws", scope=CapScope.WORKSPACE, scope_id="ws", period=Period.DAY,
            limit_micros=CAP_MICROS,
        )  # fmt: skip
        await store.set_cap(cap, datetime.now(UTC))


async def test_four_processes_on_postgresql_never_pass_a_5_dollar_cap(tmp_path: Path) -> None:
    async with fresh_schema() as url:
        await set_cap(url)
        counts = await run_children(url, 4, tmp_path)
        assert all(c["accepted"] + c["refused"] == TOTAL_JOBS // 4 for c in counts)
        await check_the_books(url, counts)


async def test_one_process_on_sqlite_never_passes_a_5_dollar_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/load.db"
    await set_cap(url)
    counts = await run_children(url, 1, tmp_path)
    await check_the_books(url, counts)
