"""The PostgreSQL store (asyncpg): the SQLite store's contract, for several processes at once.

Same tables, rules and semantics as :class:`bot.storage.sqlite.SqliteStore`; what differs
is how correctness holds when several bananabot processes share one database
(shared/reference/reliability-security-perf.md §1.2):

* Money writes (``enqueue``, ``finish``, ``fail``, ``set_cap``, ``remove_cap``) run in one
  transaction that first takes a transaction-scoped advisory lock on the job's or cap's
  workspace (``pg_advisory_xact_lock``). Every cap belongs to exactly one workspace, so two
  reservations against a cap can never both pass a check that only one fits, and a new
  cap's backfill from the ledger never misses an append in flight. Each such transaction
  takes that one advisory lock before any row lock, so they cannot deadlock each other;
  a deadlock or serialization failure from elsewhere is retried.
* ``claim`` takes the next job in fair order with ``FOR NO KEY UPDATE SKIP LOCKED``, so
  workers in any number of processes never take the same job and never wait on each other
  (``NO KEY`` rather than plain ``FOR UPDATE``: it is all an update of a job's status
  needs, and it does not block a child job's foreign-key check on its parent).
* The ledger is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE.
* Migrations (versioned files in ``bot/storage/migrations_pg``) run in one transaction under
  an advisory lock, so processes starting at once apply each migration exactly once.

Times are ``timestamptz``: every ``now`` must be timezone-aware, and every time read back
is a UTC-aware datetime. Money is BIGINT micro-dollars.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from bot.budgets import BudgetCap, CapScope, CapUsage, Period, first_exceeded, period_bounds
from bot.errors import ConfigurationError, NotFound
from bot.interfaces import EnqueueResult, JobStat
from bot.models import Job, Origin, ResultImage
from bot.policy import ChannelPolicy
from bot.storage.rows import Row, cap_from_row, job_from_row, result_from_row

__all__ = ["PostgresStore", "migrations"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_TERMINAL = ("succeeded", "failed", "cancelled")

# Advisory lock classes (the first int of the two-int lock key): "bana" and "ledg".
_MIGRATION_LOCK = 0x62616E61
_WORKSPACE_LOCK = 0x6C656467

# A transaction that lost a deadlock or a serialization check is run again from the start.
_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
_ATTEMPTS = 5

_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
)


class _Conn(Protocol):
    """The part of ``asyncpg.Connection`` this module uses (asyncpg ships no types)."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def executemany(self, command: str, args: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, query: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False
    ) -> AbstractAsyncContextManager[Any]: ...


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) for every file in ``bot/storage/migrations_pg``, in order."""
    folder = resources.files("bot.storage") / "migrations_pg"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _where(dsn: str) -> str:
    """The server and database of a DSN, for messages (never the password)."""
    parts = urlsplit(dsn)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path or ''}"


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


def _period_start(period: Period, when: datetime) -> datetime | None:
    """The start of the period ``when`` falls in (``cap_totals.period_start``); None for a
    total cap, stored as ``-infinity``."""
    start, _ = period_bounds(period, when)
    return start


class PostgresStore:
    """Implements ``JobQueue``, ``JobReader``, ``LedgerBook`` and ``PolicyBook`` (the
    :class:`bot.storage.Store` Protocol) on a PostgreSQL database, through an asyncpg pool.

    Use as an async context manager, or call :meth:`open` and :meth:`close`.

    Args:
        dsn: ``postgresql://user:password@host:port/database`` (``DATABASE_URL``).
        schema: keep every table in this schema (created if missing; pool connections get
            it as their ``search_path``); None uses the connection's default (``public``).
        min_size: connections the pool keeps open.
        max_size: connections the pool opens at most (concurrent transactions).
        close_timeout: seconds :meth:`close` waits for borrowed connections before it
            terminates them.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        close_timeout: float = 10.0,
    ) -> None:
        if schema is not None and not schema.strip():
            raise ValueError("schema must be a non-empty name or None")
        self.dsn = dsn
        self.schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._close_timeout = close_timeout
        self._pool: Any = None

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the pool, create the schema if asked, and apply pending migrations.

        Raises:
            ConfigurationError: the server cannot be reached or refuses the connection
                (the message names server and database, never the password).
        """
        settings = {"application_name": "bananabot", "timezone": "UTC"}
        if self.schema is not None:
            settings["search_path"] = _ident(self.schema)
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                server_settings=settings,
            )
        except _CONNECT_ERRORS as exc:
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {_where(self.dsn)}: {exc}"
            ) from exc
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool (waiting up to ``close_timeout`` for borrowed connections)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self._close_timeout)
        except TimeoutError:
            log.warning("closing PostgreSQL connections that were still in use")
            pool.terminate()

    async def _migrate(self) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(COALESCE($2, current_schema(), '')))",
                _MIGRATION_LOCK,
                self.schema,
            )
            if self.schema is not None:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(self.schema)}")
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS bananabot_migrations (
                   version INTEGER PRIMARY KEY,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            )
            current = int(
                await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM bananabot_migrations")
            )
            for version, sql in migrations():
                if version <= current:
                    continue
                log.info(
                    "applying migration",
                    extra={"version": version, "schema": self.schema or "(default)"},
                )
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO bananabot_migrations (version) VALUES ($1)", version
                )

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[_Conn]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        async with self._pool.acquire() as conn:
            yield conn

    async def _tx(self, body: Callable[[_Conn], Awaitable[T]]) -> T:
        """Run ``body`` in one READ COMMITTED transaction; again (from the start, in a new
        transaction) if it lost a deadlock or a serialization check."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._conn() as conn, conn.transaction():
                    return await body(conn)
            except _RETRYABLE:
                if attempt == _ATTEMPTS:
                    raise
                log.info("retrying a PostgreSQL transaction", extra={"attempt": attempt})
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    async def _lock_workspace(self, conn: _Conn, workspace_id: str) -> None:
        """Serialise money writes of one workspace (in this schema) across every process,
        until commit."""
        await conn.execute(
            """SELECT pg_advisory_xact_lock(
                   $1, hashtext(COALESCE(current_schema(), '') || chr(31) || $2))""",
            _WORKSPACE_LOCK,
            workspace_id,
        )

    # --- JobQueue ------------------------------------------------------------------------

    async def enqueue(self, job: Job, caps: Sequence[BudgetCap], now: datetime) -> EnqueueResult:
        """Store a queued job and reserve ``job.estimate_micros`` against every cap at once.

        A job whose idempotency key exists already is returned unchanged (created=False),
        with no second reservation. ``created_at`` and ``updated_at`` are ``now``.

        Raises:
            bot.errors.BudgetExceeded: the tightest cap the reservation would exceed;
                nothing is stored.
            ValueError: ``now`` is naive.
        """
        _aware(now)

        async def body(conn: _Conn) -> EnqueueResult:
            await self._lock_workspace(conn, job.origin.workspace_id)
            existing = await self._by_key(conn, job.idempotency_key)
            if existing is not None:
                return EnqueueResult(
                    job_from_row(existing), await self._position(conn, existing), created=False
                )
            refusal = first_exceeded(await self._usage(conn, caps, now), job.estimate_micros)
            if refusal is not None:
                raise refusal
            origin = job.origin
            row = await conn.fetchrow(
                """INSERT INTO jobs (id, idempotency_key, platform, workspace_id, channel_id,
                   user_id, origin_json, request_json, action, parent_job_id, parent_index,
                   provider, status, fair_round, estimate_micros, notices_json, created_at,
                   updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,'queued',$13,$14,
                   $15,$16,$16)
                   ON CONFLICT (idempotency_key) DO NOTHING
                   RETURNING *""",
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
                await self._fair_round(conn, job),
                job.estimate_micros,
                json.dumps(list(job.notices)),
                now,
            )
            if row is None:  # the same key, committed meanwhile from another workspace
                existing = await self._by_key(conn, job.idempotency_key)
                assert existing is not None
                return EnqueueResult(
                    job_from_row(existing), await self._position(conn, existing), created=False
                )
            await self._ledger(conn, row, [("reserve", job.estimate_micros)], now, now)
            return EnqueueResult(job_from_row(row), await self._position(conn, row), created=True)

        return await self._tx(body)

    @staticmethod
    async def _by_key(conn: _Conn, key: str) -> Row | None:
        return await conn.fetchrow("SELECT * FROM jobs WHERE idempotency_key = $1", key)

    @staticmethod
    async def _fair_round(conn: _Conn, job: Job) -> int:
        """Round-robin between users: a user's next job goes one round after their last
        queued one, and never before the round the queue is serving now."""
        row = await conn.fetchrow(
            """SELECT (SELECT MIN(fair_round) FROM jobs
                       WHERE provider = $1 AND status = 'queued') AS serving,
                      (SELECT MAX(fair_round) FROM jobs WHERE provider = $1 AND status = 'queued'
                       AND workspace_id = $2 AND user_id = $3) AS user_last""",
            job.provider,
            job.origin.workspace_id,
            job.origin.user_id,
        )
        assert row is not None
        serving, user_last = row["serving"], row["user_last"]
        return max(int(serving or 0), int(user_last) + 1 if user_last is not None else 0)

    @staticmethod
    async def _position(conn: _Conn, row: Row) -> int:
        if row["status"] != "queued":
            return 0
        counted = await conn.fetchval(
            """SELECT COUNT(*) FROM jobs WHERE provider = $1 AND status = 'queued'
               AND (fair_round, seq) <= ($2, $3)""",
            row["provider"],
            row["fair_round"],
            row["seq"],
        )
        return int(counted)

    async def claim(self, provider: str, now: datetime, job_id: str | None = None) -> Job | None:
        """Take the next queued job for ``provider``, round-robin between users (or exactly
        ``job_id`` if it is still queued), and mark it running; None if there is none.

        Jobs another transaction is claiming right now are skipped, never waited for, so
        any number of workers in any number of processes each get a different job.

        Raises:
            ValueError: ``now`` is naive.
        """
        only = "AND id = $3" if job_id is not None else ""
        args: tuple[Any, ...] = (_aware(now), provider) + ((job_id,) if job_id is not None else ())
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"""UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = $1
                   WHERE seq = (SELECT seq FROM jobs WHERE provider = $2 AND status = 'queued'
                                {only} ORDER BY fair_round, seq LIMIT 1
                                FOR NO KEY UPDATE SKIP LOCKED)
                   AND status = 'queued'
                   RETURNING *""",
                *args,
            )
        return job_from_row(row) if row is not None else None

    async def undelivered(self, platforms: Sequence[str], now: datetime, limit: int) -> list[Job]:
        """Succeeded or failed jobs of ``platforms`` not yet delivered, oldest first,
        leaving out those another process is delivering (lease not yet expired).

        Raises:
            ValueError: ``now`` is naive.
        """
        if not platforms:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM jobs WHERE delivered_at IS NULL
                   AND platform = ANY($1::text[]) AND status IN ('succeeded', 'failed')
                   AND (delivery_lease_until IS NULL OR delivery_lease_until < $2)
                   ORDER BY seq LIMIT $3""",
                list(platforms),
                _aware(now),
                limit,
            )
        return [job_from_row(row) for row in rows]

    async def lease_delivery(self, job_id: str, now: datetime, until: datetime) -> bool:
        """Take the right to deliver a finished job until ``until``; False if it is
        delivered or another process holds an unexpired lease.

        Raises:
            ValueError: a naive datetime.
        """
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """UPDATE jobs SET delivery_lease_until = $1
                   WHERE id = $2 AND delivered_at IS NULL
                   AND (delivery_lease_until IS NULL OR delivery_lease_until < $3)
                   RETURNING id""",
                _aware(until),
                job_id,
                _aware(now),
            )
        return row is not None

    async def mark_delivered(self, job_id: str, now: datetime) -> None:
        """Record that a finished job's outcome reached its adapter.

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE jobs SET delivered_at = $1 WHERE id = $2 AND delivered_at IS NULL",
                _aware(now),
                job_id,
            )

    async def heartbeat(self, job_ids: Sequence[str], now: datetime) -> None:
        """Touch running jobs this process works (``updated_at`` = ``now``).

        Raises:
            ValueError: ``now`` is naive.
        """
        if not job_ids:
            return
        async with self._conn() as conn:
            await conn.execute(
                """UPDATE jobs SET updated_at = $1
                   WHERE id = ANY($2::text[]) AND status = 'running'""",
                _aware(now),
                list(job_ids),
            )

    async def take_over(self, job_id: str, now: datetime, stale_before: datetime) -> Job | None:
        """Take a running job last touched before ``stale_before`` (its worker stopped);
        one process wins, the others get None.

        Raises:
            ValueError: a naive datetime.
        """
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """UPDATE jobs SET updated_at = $1
                   WHERE id = $2 AND status = 'running' AND updated_at < $3 RETURNING *""",
                _aware(now),
                job_id,
                _aware(stale_before),
            )
        return None if row is None else job_from_row(row)

    async def set_task_id(self, job_id: str, task_id: str, now: datetime) -> None:
        """Durably record the provider's task id of a job (committed when this returns).

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE jobs SET provider_task_id = $1, updated_at = $2 WHERE id = $3",
                task_id,
                _aware(now),
                job_id,
            )

    async def finish(
        self,
        job_id: str,
        images: Sequence[ResultImage],
        cost_micros: int,
        now: datetime,
        notices: Sequence[str] = (),
    ) -> Job:
        """Store results and settle: release the reservation, charge ``cost_micros``
        (micro-dollars), and append ``notices`` to the job's. All entries count in the
        period the job was reserved in. Idempotent: a terminal job is returned unchanged.

        Raises:
            bot.errors.NotFound: no such job.
            ValueError: ``now`` is naive.
        """
        _aware(now)

        async def body(conn: _Conn) -> Job:
            row = await self._locked_job(conn, job_id)
            if row["status"] in _TERMINAL:
                return job_from_row(row)
            if images:
                await conn.executemany(
                    """INSERT INTO results (job_id, idx, media_key, mime_type, width, height,
                       seed, cost_micros, nsfw, withheld, provider_url)
                       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)""",
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
                            i.nsfw,
                            i.withheld,
                            i.provider_url,
                        )
                        for i in images
                    ],
                )
            await self._ledger(
                conn,
                row,
                [("release", -row["estimate_micros"]), ("charge", cost_micros)],
                row["created_at"],  # the reservation's time: all entries count there
                now,
            )
            updated = await conn.fetchrow(
                """UPDATE jobs SET status = 'succeeded', cost_micros = $1, updated_at = $2,
                   notices_json = $3 WHERE id = $4 RETURNING *""",
                cost_micros,
                now,
                json.dumps([*json.loads(row["notices_json"]), *notices]),
                job_id,
            )
            assert updated is not None
            return job_from_row(updated)

        return await self._tx(body)

    async def fail(
        self, job_id: str, code: str, message: str, now: datetime, *, cancelled: bool = False
    ) -> Job:
        """Mark a job failed (or cancelled) and refund its reservation in full. Idempotent:
        a terminal job is returned unchanged, and so is a job that is no longer queued when
        ``cancelled`` (the provider bills started work). ``message`` is kept to 2,000
        characters.

        Raises:
            bot.errors.NotFound: no such job.
            ValueError: ``now`` is naive.
        """
        _aware(now)

        async def body(conn: _Conn) -> Job:
            row = await self._locked_job(conn, job_id)
            if row["status"] in _TERMINAL or (cancelled and row["status"] != "queued"):
                return job_from_row(row)
            await self._ledger(
                conn, row, [("release", -row["estimate_micros"])], row["created_at"], now
            )
            updated = await conn.fetchrow(
                """UPDATE jobs SET status = $1, error_code = $2, error_message = $3,
                   updated_at = $4 WHERE id = $5 RETURNING *""",
                "cancelled" if cancelled else "failed",
                code,
                message[:2000],
                now,
                job_id,
            )
            assert updated is not None
            return job_from_row(updated)

        return await self._tx(body)

    async def _locked_job(self, conn: _Conn, job_id: str) -> Row:
        """The job's row, locked until commit, after its workspace's money lock (always in
        that order, so settlements and reservations cannot deadlock)."""
        workspace_id = await conn.fetchval("SELECT workspace_id FROM jobs WHERE id = $1", job_id)
        if workspace_id is None:
            raise NotFound(f"no job {job_id}")
        await self._lock_workspace(conn, str(workspace_id))
        row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1 FOR NO KEY UPDATE", job_id)
        assert row is not None
        return row

    @staticmethod
    async def _ledger(
        conn: _Conn,
        job: Row,
        entries: Sequence[tuple[str, int]],
        period_at: datetime,
        now: datetime,
    ) -> None:
        """Append ledger entries (kind, micro-dollars) for one job, and add them to the
        totals of every cap they count against, in the caller's transaction."""
        await conn.executemany(
            """INSERT INTO ledger (job_id, kind, amount_micros, provider, workspace_id,
               channel_id, user_id, period_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)""",
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
                    now,
                )
                for kind, amount in entries
            ],
        )
        await conn.execute(
            """INSERT INTO cap_totals (scope, workspace_id, scope_id, period, period_start,
               spent_micros, held_micros)
               SELECT scope, workspace_id, scope_id, period,
                      CASE period WHEN 'day' THEN $1::timestamptz WHEN 'week' THEN $2::timestamptz
                                  WHEN 'month' THEN $3::timestamptz
                                  ELSE '-infinity'::timestamptz END,
                      $4::bigint, $5::bigint
               FROM budget_caps WHERE workspace_id = $6 AND (
                 (scope = 'user' AND scope_id = $7)
                 OR (scope = 'channel' AND scope_id = $8) OR scope = 'workspace')
               ORDER BY scope, scope_id, period
               ON CONFLICT (scope, workspace_id, scope_id, period, period_start) DO UPDATE SET
               spent_micros = cap_totals.spent_micros + excluded.spent_micros,
               held_micros = cap_totals.held_micros + excluded.held_micros""",
            _period_start(Period.DAY, period_at),
            _period_start(Period.WEEK, period_at),
            _period_start(Period.MONTH, period_at),
            sum(amount for kind, amount in entries if kind == "charge"),
            sum(amount for kind, amount in entries if kind != "charge"),
            job["workspace_id"],
            job["user_id"],
            job["channel_id"],
        )

    # --- JobReader -----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job:
        """The job with id ``job_id``.

        Raises:
            bot.errors.NotFound: no such job.
        """
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        if row is None:
            raise NotFound(f"no job {job_id}")
        return job_from_row(row)

    async def get_results(self, job_id: str) -> list[ResultImage]:
        """A job's stored images in index order (empty for an unknown or unfinished job)."""
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT * FROM results WHERE job_id = $1 ORDER BY idx", job_id)
        return [result_from_row(row) for row in rows]

    async def queue_positions(self, limit: int) -> list[tuple[Job, int]]:
        """The first ``limit`` queued jobs in claim order with their positions (1 = next)
        in their provider's queue."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT *, ROW_NUMBER() OVER (PARTITION BY provider ORDER BY fair_round, seq)
                   AS position FROM jobs WHERE status = 'queued'
                   ORDER BY fair_round, seq LIMIT $1""",
                limit,
            )
        return [(job_from_row(row), int(row["position"])) for row in rows]

    async def jobs_in_status(self, status: str, limit: int) -> list[Job]:
        """Up to ``limit`` jobs in ``status``, oldest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM jobs WHERE status = $1 ORDER BY seq LIMIT $2", status, limit
            )
        return [job_from_row(row) for row in rows]

    async def job_stats(self) -> list[JobStat]:
        """Jobs per (status, provider) with their settled cost, micro-dollars (for metrics)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT status, provider, COUNT(*) AS count,
                          COALESCE(SUM(cost_micros), 0)::bigint AS cost
                   FROM jobs GROUP BY status, provider
                   ORDER BY status COLLATE "C", provider COLLATE "C"
                """
            )
        return [
            JobStat(str(r["status"]), str(r["provider"]), int(r["count"]), int(r["cost"]))
            for r in rows
        ]

    async def recent_jobs(self, workspace_id: str, user_id: str, limit: int) -> list[Job]:
        """A person's latest jobs, newest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM jobs WHERE workspace_id = $1 AND user_id = $2
                   ORDER BY seq DESC LIMIT $3""",
                workspace_id,
                user_id,
                limit,
            )
        return [job_from_row(row) for row in rows]

    async def requeue(self, job_id: str, now: datetime) -> None:
        """Put a running job that never reached its provider (no task id) back in the
        queue; anything else is left alone.

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn:
            await conn.execute(
                """UPDATE jobs SET status = 'queued', updated_at = $1
                   WHERE id = $2 AND status = 'running' AND provider_task_id IS NULL""",
                _aware(now),
                job_id,
            )

    async def reroute(self, job_id: str, provider: str, now: datetime) -> Job | None:
        """Put a running job that never reached its provider back in the queue for another
        provider (its reservation stays); None if the job is no longer running.

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """UPDATE jobs SET provider = $1, status = 'queued', provider_task_id = NULL,
                   updated_at = $2 WHERE id = $3 AND status = 'running' RETURNING *""",
                provider,
                _aware(now),
                job_id,
            )
        return job_from_row(row) if row is not None else None

    # --- LedgerBook ----------------------------------------------------------------------

    async def set_cap(self, cap: BudgetCap, now: datetime) -> None:
        """Create or change a cap. A new cap's current period starts from what the ledger
        already counts against it (so a cap set after spending sees that spending).

        Raises:
            ValueError: ``now`` is naive.
        """
        _aware(now)

        async def body(conn: _Conn) -> None:
            await self._lock_workspace(conn, cap.workspace_id)
            known = await conn.fetchval(
                """SELECT 1 FROM budget_caps WHERE scope = $1 AND workspace_id = $2
                   AND scope_id = $3 AND period = $4""",
                cap.scope.value,
                cap.workspace_id,
                cap.scope_id,
                cap.period.value,
            )
            if known is None:
                (usage,) = await self._ledger_usage(conn, [cap], now)
                await conn.execute(
                    """INSERT INTO cap_totals (scope, workspace_id, scope_id, period,
                       period_start, spent_micros, held_micros)
                       VALUES ($1,$2,$3,$4,COALESCE($5::timestamptz, '-infinity'),$6,$7)
                       ON CONFLICT (scope, workspace_id, scope_id, period, period_start)
                       DO UPDATE SET spent_micros = excluded.spent_micros,
                                     held_micros = excluded.held_micros""",
                    cap.scope.value,
                    cap.workspace_id,
                    cap.scope_id,
                    cap.period.value,
                    _period_start(cap.period, now),
                    usage.spent_micros,
                    usage.held_micros,
                )
            await conn.execute(
                """INSERT INTO budget_caps (scope, workspace_id, scope_id, period, limit_micros,
                   updated_at) VALUES ($1,$2,$3,$4,$5,$6)
                   ON CONFLICT (scope, workspace_id, scope_id, period)
                   DO UPDATE SET limit_micros = excluded.limit_micros,
                                 updated_at = excluded.updated_at""",
                cap.scope.value,
                cap.workspace_id,
                cap.scope_id,
                cap.period.value,
                cap.limit_micros,
                now,
            )

        await self._tx(body)

    async def remove_cap(self, cap: BudgetCap) -> bool:
        """Remove a cap (and its cached totals); False if there was no such cap. The
        ledger keeps every entry."""

        async def body(conn: _Conn) -> bool:
            await self._lock_workspace(conn, cap.workspace_id)
            key = (cap.scope.value, cap.workspace_id, cap.scope_id, cap.period.value)
            status = await conn.execute(
                """DELETE FROM budget_caps WHERE scope = $1 AND workspace_id = $2
                   AND scope_id = $3 AND period = $4""",
                *key,
            )
            await conn.execute(
                """DELETE FROM cap_totals WHERE scope = $1 AND workspace_id = $2
                   AND scope_id = $3 AND period = $4""",
                *key,
            )
            return status != "DELETE 0"

        return await self._tx(body)

    async def caps_for(self, origin: Origin) -> list[BudgetCap]:
        """Every cap that applies to a job from ``origin`` (its user, channel, workspace)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM budget_caps WHERE workspace_id = $1 AND (
                     (scope = 'user' AND scope_id = $2) OR (scope = 'channel' AND scope_id = $3)
                     OR scope = 'workspace')""",
                origin.workspace_id,
                origin.user_id,
                origin.channel_id,
            )
        return [cap_from_row(row) for row in rows]

    async def list_caps(self, workspace_id: str) -> list[BudgetCap]:
        """A workspace's caps, by scope, scope id (byte order, as SQLite) and period."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM budget_caps WHERE workspace_id = $1
                   ORDER BY scope, scope_id COLLATE "C", period""",
                workspace_id,
            )
        return [cap_from_row(row) for row in rows]

    async def usage(self, caps: Sequence[BudgetCap], now: datetime) -> list[CapUsage]:
        """What counts against each cap in the period ``now`` falls in, micro-dollars.

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn:
            return await self._usage(conn, caps, now)

    @staticmethod
    async def _usage(conn: _Conn, caps: Sequence[BudgetCap], now: datetime) -> list[CapUsage]:
        if not caps:
            return []
        starts = [_period_start(cap.period, now) for cap in caps]
        rows = await conn.fetch(
            """SELECT k.i, t.spent_micros, t.held_micros
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                    WITH ORDINALITY AS k (scope, workspace_id, scope_id, period, period_start, i)
               JOIN cap_totals t ON t.scope = k.scope AND t.workspace_id = k.workspace_id
                AND t.scope_id = k.scope_id AND t.period = k.period
                AND t.period_start = COALESCE(k.period_start, '-infinity'::timestamptz)""",
            [cap.scope.value for cap in caps],
            [cap.workspace_id for cap in caps],
            [cap.scope_id for cap in caps],
            [cap.period.value for cap in caps],
            starts,
        )
        found = {
            int(row["i"]) - 1: (int(row["spent_micros"]), int(row["held_micros"])) for row in rows
        }
        return [
            CapUsage(cap, *found.get(i, (0, 0)), period_bounds(cap.period, now)[1])
            for i, cap in enumerate(caps)
        ]

    async def verify_totals(self, now: datetime) -> list[str]:
        """Compare every cap's cached totals with the ledger's sums for the current period
        (both read in one snapshot); the mismatches, described (empty when the cache is
        true to the ledger).

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch("SELECT * FROM budget_caps ORDER BY workspace_id, scope")
            caps = [cap_from_row(row) for row in rows]
            cached = await self._usage(conn, caps, now)
            summed = await self._ledger_usage(conn, caps, now)
        return [
            f"{c.cap.scope.value} {c.cap.scope_id} {c.cap.period.value}: cached "
            f"{c.spent_micros}/{c.held_micros}, ledger {s.spent_micros}/{s.held_micros}"
            for c, s in zip(cached, summed, strict=True)
            if (c.spent_micros, c.held_micros) != (s.spent_micros, s.held_micros)
        ]

    @staticmethod
    async def _ledger_usage(
        conn: _Conn, caps: Sequence[BudgetCap], now: datetime
    ) -> list[CapUsage]:
        """Usage summed from the ledger itself (the truth the totals cache)."""
        usages = []
        for cap in caps:
            start, end = period_bounds(cap.period, now)
            where = ["workspace_id = $1"]
            args: list[Any] = [cap.workspace_id]
            if cap.scope is CapScope.USER:
                args.append(cap.scope_id)
                where.append(f"user_id = ${len(args)}")
            elif cap.scope is CapScope.CHANNEL:
                args.append(cap.scope_id)
                where.append(f"channel_id = ${len(args)}")
            if start is not None:
                args.append(start)
                where.append(f"period_at >= ${len(args)}")
            row = await conn.fetchrow(
                f"""SELECT
                      COALESCE(SUM(amount_micros) FILTER (WHERE kind = 'charge'), 0)::bigint
                        AS spent,
                      COALESCE(SUM(amount_micros) FILTER (WHERE kind <> 'charge'), 0)::bigint
                        AS held
                    FROM ledger WHERE {" AND ".join(where)}""",
                *args,
            )
            assert row is not None
            usages.append(CapUsage(cap, int(row["spent"]), int(row["held"]), end))
        return usages

    async def spend_by(
        self, workspace_id: str, scope: CapScope, since: datetime | None, limit: int
    ) -> list[tuple[str, int, int]]:
        """(user or channel id, spent, held) in micro-dollars of entries reserved since
        ``since`` (all time if None), top spenders first; ``scope`` is USER or CHANNEL.

        Raises:
            ValueError: ``since`` is naive.
        """
        column = "user_id" if scope is CapScope.USER else "channel_id"
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"""SELECT {column} AS who,
                      COALESCE(SUM(amount_micros) FILTER (WHERE kind = 'charge'), 0)::bigint
                        AS spent,
                      COALESCE(SUM(amount_micros) FILTER (WHERE kind <> 'charge'), 0)::bigint
                        AS held
                    FROM ledger WHERE workspace_id = $1
                    AND ($2::timestamptz IS NULL OR period_at >= $2::timestamptz)
                    GROUP BY {column} ORDER BY spent DESC, {column} COLLATE "C" LIMIT $3""",
                workspace_id,
                _aware(since) if since is not None else None,
                limit,
            )
        return [(str(row["who"]), int(row["spent"]), int(row["held"])) for row in rows]

    async def ledger_totals(self) -> dict[str, int]:
        """Sum of every ledger kind, in micro-dollars (for invariant checks and reports)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT kind, SUM(amount_micros)::bigint AS total FROM ledger GROUP BY kind"
            )
        return {str(row["kind"]): int(row["total"]) for row in rows}

    # --- PolicyBook ----------------------------------------------------------------------

    async def get_policy(self, workspace_id: str, channel_id: str) -> ChannelPolicy | None:
        """The policy of a channel (``""``: the workspace-wide one), or None if unset."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM channel_policies WHERE workspace_id = $1 AND channel_id = $2",
                workspace_id,
                channel_id,
            )
        if row is None:
            return None
        return ChannelPolicy(
            max_tolerance=row["max_tolerance"], force_check_content=row["force_check_content"]
        )

    async def set_policy(
        self, workspace_id: str, channel_id: str, policy: ChannelPolicy, now: datetime
    ) -> None:
        """Create or replace the policy of a channel (``""``: the workspace-wide one).

        Raises:
            ValueError: ``now`` is naive.
        """
        async with self._conn() as conn:
            await conn.execute(
                """INSERT INTO channel_policies (workspace_id, channel_id, max_tolerance,
                   force_check_content, updated_at) VALUES ($1,$2,$3,$4,$5)
                   ON CONFLICT (workspace_id, channel_id) DO UPDATE SET
                   max_tolerance = excluded.max_tolerance,
                   force_check_content = excluded.force_check_content,
                   updated_at = excluded.updated_at""",
                workspace_id,
                channel_id,
                policy.max_tolerance,
                policy.force_check_content,
                _aware(now),
            )
