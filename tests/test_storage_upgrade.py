"""Upgrading a SQLite database keeps what caps already count.

Version 2 added ``cap_totals``, a cache of the ledger's sums per cap and period. A database
made before it has caps and spend but no totals: after the upgrade every cap must still
count what was spent and held, or a person could spend past a cap once more.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.budgets import BudgetCap, CapScope, Period
from bot.models import ImageRequest, Job, JobStatus, Origin
from bot.storage import SqliteStore

ORIGIN = Origin(platform="cli", workspace_id="ws", channel_id="c", user_id="alice")


def job(job_id: str, estimate: int) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=job_id, origin=ORIGIN, request=ImageRequest(prompt="a lighthouse at dusk"),
        provider="p", status=JobStatus.QUEUED, estimate_micros=estimate,
        idempotency_key=job_id, created_at=now, updated_at=now,
    )  # fmt: skip


def back_to_version_1(path: Path) -> None:
    """Undo migrations 3 and 2 on the file, keeping every row they did not add."""
    with sqlite3.connect(path) as db:
        db.executescript(
            """DROP INDEX jobs_undelivered;
               ALTER TABLE jobs DROP COLUMN delivered_at;
               ALTER TABLE jobs DROP COLUMN delivery_lease_until;
               DROP TABLE cap_totals;
               PRAGMA user_version=1;"""
        )


async def test_an_upgrade_fills_the_totals_of_existing_caps_from_the_ledger(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    day = BudgetCap(
        workspace_id="ws", scope=CapScope.WORKSPACE, scope_id="ws", period=Period.DAY,
        limit_micros=5_000_000,
    )  # fmt: skip
    now = datetime.now(UTC)
    async with SqliteStore(path) as store:
        await store.set_cap(day, now)
        for name, estimate in (("spent", 300_000), ("held", 200_000)):
            await store.enqueue(job(name, estimate), [day], now)
        await store.claim("p", now, job_id="spent")
        await store.finish("spent", [], 250_000, now)
        (before,) = await store.usage([day], now)
    assert (before.spent_micros, before.held_micros) == (250_000, 200_000)
    back_to_version_1(path)

    async with SqliteStore(path) as store:
        (after,) = await store.usage([day], datetime.now(UTC))
        assert (after.spent_micros, after.held_micros) == (250_000, 200_000)
        assert await store.verify_totals(datetime.now(UTC)) == []
