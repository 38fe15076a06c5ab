"""The SQLite store (aiosqlite): jobs, results, the append-only ledger, caps and policies.

Correctness under concurrency follows shared/reference/reliability-security-perf.md §1.2:
every write is one ``BEGIN IMMEDIATE`` transaction on the single writer connection (so a
reservation's check and insert cannot interleave with another's), readers use their own
connection in WAL mode, and the ledger is append-only (triggers refuse UPDATE and DELETE).

One process at a time: :meth:`SqliteStore.open` takes an exclusive ``flock`` on the sidecar
``<file>.lock`` and refuses to open while another process (or another open store in this
process) holds it. Several processes share one PostgreSQL database instead
(:mod:`bot.storage.postgres`).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from bot.budgets import BudgetCap, CapScope, CapUsage, Period, first_exceeded, period_bounds
from bot.errors import ConfigurationError, NotFound
from bot.interfaces import EnqueueResult, JobStat
from bot.models import Job, Origin, ResultImage
from bot.policy import ChannelPolicy
from bot.storage.rows import cap_from_row, dt, job_from_row, result_from_row, ts

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

_TERMINAL = ("succeeded", "failed", "cancelled")
_CAP_TOTALS_VERSION = 2
"""The migration that added ``cap_totals`` (empty: existing caps are filled after it)."""


async def _one(
    db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()
) -> aiosqlite.Row | None:
    """Run a statement and return its first row, in one trip to the connection's thread."""
    rows = await db.execute_fetchall(sql, args)
    return next(iter(rows), None)


async def _all(db: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> list[aiosqlite.Row]:
    return list(await db.execute_fetchall(sql, args))


def _period_key(period: Period, when: datetime) -> str:
    """The start of the period ``when`` falls in, as stored in ``cap_totals``."""
    start, _ = period_bounds(period, when)
    return ts(start) if start is not None else ""


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) for every file in ``bot/storage/migrations``, in order."""
    folder = resources.files("bot.storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


class SqliteStore:
    """Implements ``JobQueue``, ``JobReader``, ``LedgerBook`` and ``PolicyBook`` on one file.

    Use as an async context manager, or call :meth:`open` and :meth:`close`.

    Args:
        path: the database file (``":memory:"`` is not supported: two connections share it).
        busy_timeout: seconds a connection waits for another connection's write lock.
        exclusive: hold the process lock (``<file>.lock``) while open, so a second process
            cannot open the same file. Only a short-lived tool that must run beside the
            serving process (and knows SQLite then serialises the two) passes False.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 10.0, exclusive: bool = True
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._busy_ms = int(busy_timeout * 1000)
        self._exclusive = exclusive
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._lock_fd: int | None = None

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Take the process lock, connect, switch to WAL, and apply pending migrations.

        Raises:
            ConfigurationError: another process (or another open store in this process)
                is using the file; nothing is left open.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._exclusive:
            self._lock_fd = self._take_process_lock()
        try:
            self._writer = await self._connect()
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except BaseException:
            await self.close()
            raise

    def _take_process_lock(self) -> int:
        """Open ``<file>.lock`` and take a non-blocking exclusive ``flock`` on it; the fd.

        The lock belongs to the open file description, so the kernel drops it when the
        process dies, however it dies; the file itself is left in place (removing it would
        let two processes lock two different files of one name).
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigurationError(
                f"another bananabot process is already using {self.path.resolve()}; SQLite "
                "serves one process at a time: stop the other process, or use PostgreSQL "
                "(DATABASE_URL=postgresql://...) to run several"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def close(self) -> None:
        """Close both connections and release the process lock; safe to call twice."""
        try:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    await conn.close()
        finally:
            self._reader = self._writer = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the only fd releases the flock
                self._lock_fd = None

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for version, sql in migrations():
            if version <= current:
                continue
            log.info("applying migration", extra={"version": version, "path": str(self.path)})
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;"
            )
        if 0 < current < _CAP_TOTALS_VERSION:
            # cap_totals came in empty: fill the current period of every existing cap from
            # the ledger, or an upgrade would forget what was already spent and held.
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute("SELECT * FROM budget_caps") as cur:
                    caps = [cap_from_row(row) async for row in cur]
                for cap in caps:
                    await self._fill_totals(db, cap, datetime.now(UTC))
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    @property
    def _r(self) -> aiosqlite.Connection:
        assert self._reader is not None, "store is not open"
        return self._reader

    @asynccontextmanager
    async def _write(self, *, transaction: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection, exclusively; inside ``BEGIN IMMEDIATE`` .. ``COMMIT`` unless
        ``transaction`` is False (a single statement is atomic on its own)."""
        assert self._writer is not None, "store is not open"
        async with self._lock:
            db = self._writer
            if not transaction:
                yield db
                return
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    # --- JobQueue ------------------------------------------------------------------------

    async def enqueue(self, job: Job, caps: Sequence[BudgetCap], now: datetime) -> EnqueueResult:
        async with self._write() as db:
            existing = await _one(
                db, "SELECT * FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)
            )
            if existing is not None:
                found = job_from_row(existing)
                return EnqueueResult(found, await self._position(db, existing), created=False)
            refusal = first_exceeded(await self._usage(db, caps, now), job.estimate_micros)
            if refusal is not None:
                raise refusal
            fair_round = await self._fair_round(db, job)
            origin = job.origin
            row = await _one(
                db,
                """INSERT INTO jobs (id, idempotency_key, platform, workspace_id, channel_id,
                   user_id, origin_json, request_json, action, parent_job_id, parent_index,
                   provider, status, fair_round, estimate_micros, notices_json, created_at,
                   updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'queued',?,?,?,?,?)
                   RETURNING *""",
                (
                    job.id,
                    job.idempotency_key,
                    origin.platform,
                    origin.workspace_id,
                    origin.channel_id,
                    origin.user_id,
                    origin.model_dump_json(),
                    job.request.model_dump_json(exclude_none=True),
                    job.action.value,
                    job.parent_job_id,
                    job.parent_index,
                    job.provider,
                    fair_round,
                    job.estimate_micros,
                    json.dumps(list(job.notices)),
                    ts(now),
                    ts(now),
                ),
            )
            assert row is not None
            await self._ledger(db, row, [("reserve", job.estimate_micros)], ts(now), now)
            return EnqueueResult(job_from_row(row), await self._position(db, row), created=True)

    async def _fair_round(self, db: aiosqlite.Connection, job: Job) -> int:
        """Round-robin between users: a user's next job goes one round after their last
        queued one, and never before the round the queue is serving now."""
        row = await _one(
            db,
            """SELECT (SELECT MIN(fair_round) FROM jobs WHERE provider = ? AND status = 'queued'),
                      (SELECT MAX(fair_round) FROM jobs WHERE provider = ? AND status = 'queued'
                       AND workspace_id = ? AND user_id = ?)""",
            (job.provider, job.provider, job.origin.workspace_id, job.origin.user_id),
        )
        assert row is not None
        serving, user_last = row[0], row[1]
        return max(serving or 0, user_last + 1 if user_last is not None else 0)

    async def _position(self, db: aiosqlite.Connection, row: aiosqlite.Row) -> int:
        if row["status"] != "queued":
            return 0
        counted = await _one(
            db,
            """SELECT COUNT(*) FROM jobs WHERE provider = ? AND status = 'queued'
               AND (fair_round, seq) <= (?, ?)""",
            (row["provider"], row["fair_round"], row["seq"]),
        )
        return int(counted[0]) if counted else 0

    async def claim(self, provider: str, now: datetime, job_id: str | None = None) -> Job | None:
        only = "AND id = ?" if job_id is not None else ""
        args: tuple[Any, ...] = (ts(now), provider) + ((job_id,) if job_id is not None else ())
        async with self._write(transaction=False) as db:
            row = await _one(
                db,
                f"""UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ?
                   WHERE seq = (SELECT seq FROM jobs WHERE provider = ? AND status = 'queued'
                                {only} ORDER BY fair_round, seq LIMIT 1)
                   RETURNING *""",
                args,
            )
        return job_from_row(row) if row is not None else None

    async def undelivered(self, platforms: Sequence[str], now: datetime, limit: int) -> list[Job]:
        """Succeeded or failed jobs of ``platforms`` not yet delivered, oldest first,
        leaving out those another process is delivering (lease not yet expired)."""
        if not platforms:
            return []
        marks = ",".join("?" * len(platforms))
        rows = await _all(
            self._r,
            f"""SELECT * FROM jobs WHERE delivered_at IS NULL AND platform IN ({marks})
                AND status IN ('succeeded', 'failed')
                AND (delivery_lease_until IS NULL OR delivery_lease_until < ?)
                ORDER BY seq LIMIT ?""",
            (*platforms, ts(now), limit),
        )
        return [job_from_row(row) for row in rows]

    async def lease_delivery(self, job_id: str, now: datetime, until: datetime) -> bool:
        """Take the right to deliver a finished job until ``until``; False if it is
        delivered or another process holds an unexpired lease."""
        async with self._write(transaction=False) as db:
            row = await _one(
                db,
                """UPDATE jobs SET delivery_lease_until = ?
                   WHERE id = ? AND delivered_at IS NULL
                   AND (delivery_lease_until IS NULL OR delivery_lease_until < ?)
                   RETURNING id""",
                (ts(until), job_id, ts(now)),
            )
        return row is not None

    async def mark_delivered(self, job_id: str, now: datetime) -> None:
        """Record that a finished job's outcome reached its adapter."""
        async with self._write(transaction=False) as db:
            await db.execute(
                "UPDATE jobs SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                (ts(now), job_id),
            )

    async def heartbeat(self, job_ids: Sequence[str], now: datetime) -> None:
        """Touch running jobs this process works (``updated_at`` = ``now``)."""
        if not job_ids:
            return
        marks = ",".join("?" * len(job_ids))
        async with self._write(transaction=False) as db:
            await db.execute(
                f"UPDATE jobs SET updated_at = ? WHERE status = 'running' AND id IN ({marks})",
                (ts(now), *job_ids),
            )

    async def take_over(self, job_id: str, now: datetime, stale_before: datetime) -> Job | None:
        """Take a running job last touched before ``stale_before``; None if it ended or is
        fresh. (One process per file: the lock makes this a formality here.)"""
        async with self._write(transaction=False) as db:
            row = await _one(
                db,
                """UPDATE jobs SET updated_at = ?
                   WHERE id = ? AND status = 'running' AND updated_at < ? RETURNING *""",
                (ts(now), job_id, ts(stale_before)),
            )
        return job_from_row(row) if row is not None else None

    async def set_task_id(self, job_id: str, task_id: str, now: datetime) -> None:
        async with self._write(transaction=False) as db:
            await db.execute(
                "UPDATE jobs SET provider_task_id = ?, updated_at = ? WHERE id = ?",
                (task_id, ts(now), job_id),
            )

    async def finish(
        self,
        job_id: str,
        images: Sequence[ResultImage],
        cost_micros: int,
        now: datetime,
        notices: Sequence[str] = (),
    ) -> Job:
        async with self._write() as db:
            row = await self._job_row(db, job_id)
            if row["status"] in _TERMINAL:
                return job_from_row(row)
            await db.executemany(
                """INSERT INTO results (job_id, idx, media_key, mime_type, width, height, seed,
                   cost_micros, nsfw, withheld, provider_url) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
                [
                    (
                        job_id,
                        i.index,
                        i.media_key,
                        i.mime_type,
                        i.width,
                        i.height,
                        i.seed,
                        i.cost_micros,
                        int(i.nsfw),
                        int(i.withheld),
                        i.provider_url,
                    )
                    for i in images
                ],
            )
            period_at = row["created_at"]  # the reservation's time: all entries count there
            await self._ledger(
                db,
                row,
                [("release", -row["estimate_micros"]), ("charge", cost_micros)],
                period_at,
                now,
            )
            updated = await _one(
                db,
                """UPDATE jobs SET status = 'succeeded', cost_micros = ?, updated_at = ?,
                   notices_json = ? WHERE id = ? RETURNING *""",
                (
                    cost_micros,
                    ts(now),
                    json.dumps([*json.loads(row["notices_json"]), *notices]),
                    job_id,
                ),
            )
        assert updated is not None
        return job_from_row(updated)

    async def fail(
        self, job_id: str, code: str, message: str, now: datetime, *, cancelled: bool = False
    ) -> Job:
        async with self._write() as db:
            row = await self._job_row(db, job_id)
            if row["status"] in _TERMINAL or (cancelled and row["status"] != "queued"):
                return job_from_row(row)
            period_at = row["created_at"]  # the reservation's time: all entries count there
            await self._ledger(db, row, [("release", -row["estimate_micros"])], period_at, now)
            updated = await _one(
                db,
                """UPDATE jobs SET status = ?, error_code = ?, error_message = ?, updated_at = ?
                   WHERE id = ? RETURNING *""",
                ("cancelled" if cancelled else "failed", code, message[:2000], ts(now), job_id),
            )
        assert updated is not None
        return job_from_row(updated)

    async def _job_row(self, db: aiosqlite.Connection, job_id: str) -> aiosqlite.Row:
        row = await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(f"no job {job_id}")
        return row

    async def _ledger(
        self,
        db: aiosqlite.Connection,
        job: aiosqlite.Row,
        entries: Sequence[tuple[str, int]],
        period_at: str,
        now: datetime,
    ) -> None:
        """Append ledger entries (kind, micro-dollars) for one job, and add them to the
        totals of every cap they count against, in the caller's transaction."""
        await db.executemany(
            """INSERT INTO ledger (job_id, kind, amount_micros, provider, workspace_id,
               channel_id, user_id, period_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)""",
            [
                (
                    job["id"],
                    kind,
                    amount,
                    job["provider"],
                    job["workspace_id"],
                    job["channel_id"],
                    job["user_id"],
                    period_at,
                    ts(now),
                )
                for kind, amount in entries
            ],
        )
        when = dt(period_at)
        await db.execute(
            """INSERT INTO cap_totals (scope, workspace_id, scope_id, period, period_start,
               spent_micros, held_micros)
               SELECT scope, workspace_id, scope_id, period,
                      CASE period WHEN 'day' THEN :day WHEN 'week' THEN :week
                                  WHEN 'month' THEN :month ELSE '' END,
                      :spent, :held
               FROM budget_caps WHERE workspace_id = :workspace AND (
                 (scope = 'user' AND scope_id = :user)
                 OR (scope = 'channel' AND scope_id = :channel) OR scope = 'workspace')
               ON CONFLICT (scope, workspace_id, scope_id, period, period_start) DO UPDATE SET
               spent_micros = spent_micros + excluded.spent_micros,
               held_micros = held_micros + excluded.held_micros""",
            {
                "day": _period_key(Period.DAY, when),
                "week": _period_key(Period.WEEK, when),
                "month": _period_key(Period.MONTH, when),
                "spent": sum(amount for kind, amount in entries if kind == "charge"),
                "held": sum(amount for kind, amount in entries if kind != "charge"),
                "workspace": job["workspace_id"],
                "user": job["user_id"],
                "channel": job["channel_id"],
            },
        )

    # --- JobReader -----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job:
        return job_from_row(await self._job_row(self._r, job_id))

    async def get_results(self, job_id: str) -> list[ResultImage]:
        rows = await _all(self._r, "SELECT * FROM results WHERE job_id = ? ORDER BY idx", (job_id,))
        return [result_from_row(row) for row in rows]

    async def queue_positions(self, limit: int) -> list[tuple[Job, int]]:
        rows = await _all(
            self._r,
            """SELECT *, ROW_NUMBER() OVER (PARTITION BY provider ORDER BY fair_round, seq)
               AS position FROM jobs WHERE status = 'queued' ORDER BY fair_round, seq LIMIT ?""",
            (limit,),
        )
        return [(job_from_row(row), int(row["position"])) for row in rows]

    async def jobs_in_status(self, status: str, limit: int) -> list[Job]:
        rows = await _all(
            self._r, "SELECT * FROM jobs WHERE status = ? ORDER BY seq LIMIT ?", (status, limit)
        )
        return [job_from_row(row) for row in rows]

    async def job_stats(self) -> list[JobStat]:
        """Jobs per (status, provider) with their settled cost, micro-dollars (for metrics)."""
        rows = await _all(
            self._r,
            """SELECT status, provider, COUNT(*), COALESCE(SUM(cost_micros), 0)
               FROM jobs GROUP BY status, provider ORDER BY status, provider""",
            (),
        )
        return [JobStat(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def recent_jobs(self, workspace_id: str, user_id: str, limit: int) -> list[Job]:
        """A person's latest jobs, newest first."""
        rows = await _all(
            self._r,
            """SELECT * FROM jobs WHERE workspace_id = ? AND user_id = ?
               ORDER BY seq DESC LIMIT ?""",
            (workspace_id, user_id, limit),
        )
        return [job_from_row(row) for row in rows]

    async def requeue(self, job_id: str, now: datetime) -> None:
        async with self._write(transaction=False) as db:
            await db.execute(
                """UPDATE jobs SET status = 'queued', updated_at = ?
                   WHERE id = ? AND status = 'running' AND provider_task_id IS NULL""",
                (ts(now), job_id),
            )

    async def reroute(self, job_id: str, provider: str, now: datetime) -> Job | None:
        """Put a running job that never reached its provider back in the queue for another
        provider (its reservation stays); None if the job is no longer running."""
        async with self._write(transaction=False) as db:
            row = await _one(
                db,
                """UPDATE jobs SET provider = ?, status = 'queued', provider_task_id = NULL,
                   updated_at = ? WHERE id = ? AND status = 'running' RETURNING *""",
                (provider, ts(now), job_id),
            )
        return job_from_row(row) if row is not None else None

    # --- LedgerBook ----------------------------------------------------------------------

    async def set_cap(self, cap: BudgetCap, now: datetime) -> None:
        async with self._write() as db:
            known = await _one(
                db,
                """SELECT 1 FROM budget_caps WHERE scope = ? AND workspace_id = ? AND scope_id = ?
                   AND period = ?""",
                (cap.scope.value, cap.workspace_id, cap.scope_id, cap.period.value),
            )
            if known is None:
                await self._fill_totals(db, cap, now)
            await db.execute(
                """INSERT INTO budget_caps (scope, workspace_id, scope_id, period, limit_micros,
                   updated_at) VALUES (?,?,?,?,?,?)
                   ON CONFLICT (scope, workspace_id, scope_id, period)
                   DO UPDATE SET limit_micros = excluded.limit_micros,
                                 updated_at = excluded.updated_at""",
                (
                    cap.scope.value,
                    cap.workspace_id,
                    cap.scope_id,
                    cap.period.value,
                    cap.limit_micros,
                    ts(now),
                ),
            )

    async def _fill_totals(self, db: aiosqlite.Connection, cap: BudgetCap, now: datetime) -> None:
        """Set a cap's current-period totals to the ledger's sums (a new cap, or caps that
        predate the totals), in the caller's transaction."""
        (usage,) = await self._ledger_usage(db, [cap], now)
        await db.execute(
            """INSERT OR REPLACE INTO cap_totals (scope, workspace_id, scope_id, period,
               period_start, spent_micros, held_micros) VALUES (?,?,?,?,?,?,?)""",
            (
                cap.scope.value,
                cap.workspace_id,
                cap.scope_id,
                cap.period.value,
                _period_key(cap.period, now),
                usage.spent_micros,
                usage.held_micros,
            ),
        )

    async def remove_cap(self, cap: BudgetCap) -> bool:
        async with self._write() as db:
            cur = await db.execute(
                """DELETE FROM budget_caps WHERE scope = ? AND workspace_id = ? AND scope_id = ?
                   AND period = ?""",
                (cap.scope.value, cap.workspace_id, cap.scope_id, cap.period.value),
            )
            removed = cur.rowcount > 0
            await cur.close()
            await db.execute(
                """DELETE FROM cap_totals WHERE scope = ? AND workspace_id = ? AND scope_id = ?
                   AND period = ?""",
                (cap.scope.value, cap.workspace_id, cap.scope_id, cap.period.value),
            )
        return removed

    async def caps_for(self, origin: Origin) -> list[BudgetCap]:
        rows = await _all(
            self._r,
            """SELECT * FROM budget_caps WHERE workspace_id = ? AND (
                 (scope = 'user' AND scope_id = ?) OR (scope = 'channel' AND scope_id = ?)
                 OR scope = 'workspace')""",
            (origin.workspace_id, origin.user_id, origin.channel_id),
        )
        return [cap_from_row(row) for row in rows]

    async def list_caps(self, workspace_id: str) -> list[BudgetCap]:
        rows = await _all(
            self._r,
            "SELECT * FROM budget_caps WHERE workspace_id = ? ORDER BY scope, scope_id, period",
            (workspace_id,),
        )
        return [cap_from_row(row) for row in rows]

    async def usage(self, caps: Sequence[BudgetCap], now: datetime) -> list[CapUsage]:
        return await self._usage(self._r, caps, now)

    async def _usage(
        self, db: aiosqlite.Connection, caps: Sequence[BudgetCap], now: datetime
    ) -> list[CapUsage]:
        if not caps:
            return []
        keys = [
            (
                cap.scope.value,
                cap.workspace_id,
                cap.scope_id,
                cap.period.value,
                _period_key(cap.period, now),
            )
            for cap in caps
        ]
        rows = await _all(
            db,
            f"""SELECT scope, workspace_id, scope_id, period, period_start, spent_micros,
                       held_micros FROM cap_totals
                WHERE (scope, workspace_id, scope_id, period, period_start) IN
                      (VALUES {", ".join(["(?,?,?,?,?)"] * len(keys))})""",
            [value for key in keys for value in key],
        )
        found = {tuple(row[:5]): (int(row[5]), int(row[6])) for row in rows}
        return [
            CapUsage(cap, *found.get(key, (0, 0)), period_bounds(cap.period, now)[1])
            for cap, key in zip(caps, keys, strict=True)
        ]

    async def verify_totals(self, now: datetime) -> list[str]:
        """Compare every cap's cached totals with the ledger's sums for the current period;
        the mismatches, described (empty when the cache is true to the ledger)."""
        rows = await _all(self._r, "SELECT * FROM budget_caps")
        caps = [cap_from_row(row) for row in rows]
        cached = await self._usage(self._r, caps, now)
        summed = await self._ledger_usage(self._r, caps, now)
        return [
            f"{c.cap.scope.value} {c.cap.scope_id} {c.cap.period.value}: cached "
            f"{c.spent_micros}/{c.held_micros}, ledger {s.spent_micros}/{s.held_micros}"
            for c, s in zip(cached, summed, strict=True)
            if (c.spent_micros, c.held_micros) != (s.spent_micros, s.held_micros)
        ]

    async def _ledger_usage(
        self, db: aiosqlite.Connection, caps: Sequence[BudgetCap], now: datetime
    ) -> list[CapUsage]:
        """Usage summed from the ledger itself (the truth the totals cache)."""
        usages = []
        for cap in caps:
            start, end = period_bounds(cap.period, now)
            where = ["workspace_id = ?"]
            args: list[Any] = [cap.workspace_id]
            if cap.scope is CapScope.USER:
                where.append("user_id = ?")
                args.append(cap.scope_id)
            elif cap.scope is CapScope.CHANNEL:
                where.append("channel_id = ?")
                args.append(cap.scope_id)
            if start is not None:
                where.append("period_at >= ?")
                args.append(ts(start))
            row = await _one(
                db,
                f"""SELECT COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount_micros END), 0),
                           COALESCE(SUM(CASE WHEN kind != 'charge' THEN amount_micros END), 0)
                    FROM ledger WHERE {" AND ".join(where)}""",
                args,
            )
            assert row is not None
            usages.append(CapUsage(cap, int(row[0]), int(row[1]), end))
        return usages

    async def spend_by(
        self, workspace_id: str, scope: CapScope, since: datetime | None, limit: int
    ) -> list[tuple[str, int, int]]:
        """(user or channel id, spent, held) in micro-dollars since ``since``, top spenders
        first; ``scope`` is USER or CHANNEL."""
        column = "user_id" if scope is CapScope.USER else "channel_id"
        rows = await _all(
            self._r,
            f"""SELECT {column},
                       COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount_micros END), 0) AS spent,
                       COALESCE(SUM(CASE WHEN kind != 'charge' THEN amount_micros END), 0)
                FROM ledger WHERE workspace_id = ? AND period_at >= ?
                GROUP BY {column} ORDER BY spent DESC, {column} LIMIT ?""",
            (workspace_id, ts(since) if since else "", limit),
        )
        return [(str(row[0]), int(row[1]), int(row[2])) for row in rows]

    async def ledger_totals(self) -> dict[str, int]:
        """Sum of every ledger kind, in micro-dollars (for invariant checks and reports)."""
        rows = await _all(self._r, "SELECT kind, SUM(amount_micros) FROM ledger GROUP BY kind")
        return {str(row[0]): int(row[1]) for row in rows}

    # --- PolicyBook ----------------------------------------------------------------------

    async def get_policy(self, workspace_id: str, channel_id: str) -> ChannelPolicy | None:
        row = await _one(
            self._r,
            "SELECT * FROM channel_policies WHERE workspace_id = ? AND channel_id = ?",
            (workspace_id, channel_id),
        )
        if row is None:
            return None
        return ChannelPolicy(
            max_tolerance=row["max_tolerance"], force_check_content=bool(row["force_check_content"])
        )

    async def set_policy(
        self, workspace_id: str, channel_id: str, policy: ChannelPolicy, now: datetime
    ) -> None:
        async with self._write() as db:
            await db.execute(
                """INSERT INTO channel_policies (workspace_id, channel_id, max_tolerance,
                   force_check_content, updated_at) VALUES (?,?,?,?,?)
                   ON CONFLICT (workspace_id, channel_id) DO UPDATE SET
                   max_tolerance = excluded.max_tolerance,
                   force_check_content = excluded.force_check_content,
                   updated_at = excluded.updated_at""",
                (
                    workspace_id,
                    channel_id,
                    policy.max_tolerance,
                    int(policy.force_check_content),
                    ts(now),
                ),
            )
