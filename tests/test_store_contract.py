"""One contract for every store backend: SQLite and PostgreSQL must behave the same.

Each test runs once per backend (the ``store`` fixture). PostgreSQL tests connect to
``postgresql://127.0.0.1:5432/test`` (``BANANABOT_TEST_POSTGRES_URL`` overrides) and each
uses a fresh schema of a random name, dropped afterwards. Without a reachable server they
are skipped with the reason; with ``BANANABOT_REQUIRE_POSTGRES=1`` (CI) they fail instead.

The last part holds what only PostgreSQL promises: several stores (several pools, several
OS processes) on one database never claim a job twice and never reserve past a cap.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from bot.budgets import BudgetCap, CapScope, Period
from bot.errors import BudgetExceeded, NotFound
from bot.models import ImageRequest, Job, JobAction, JobStatus, Origin, ReferenceImage, ResultImage
from bot.policy import ChannelPolicy
from bot.storage import PostgresStore, SqliteStore, Store
from bot.storage.postgres import migrations as pg_migrations

PG_URL = os.environ.get("BANANABOT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("BANANABOT_REQUIRE_POSTGRES") == "1"

# A Wednesday: the day starts 2026-03-18, the week on Monday 2026-03-16, the month 2026-03-01.
NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
EST = 100_000

_reachable: dict[str, str | None] = {}


# --- backends --------------------------------------------------------------------------------


async def postgres_url() -> str:
    """The test server's URL; skips (fails, with BANANABOT_REQUIRE_POSTGRES=1) without one."""
    if PG_URL not in _reachable:
        try:
            conn = await asyncio.wait_for(asyncpg.connect(PG_URL), timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            _reachable[PG_URL] = f"{type(exc).__name__}: {exc}"
        else:
            await conn.close()
            _reachable[PG_URL] = None
    problem = _reachable[PG_URL]
    if problem is not None:
        reason = (
            f"no PostgreSQL server at {PG_URL} ({problem}); start one or set "
            "BANANABOT_TEST_POSTGRES_URL"
        )
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason}. BANANABOT_REQUIRE_POSTGRES=1: PostgreSQL tests must run here")
        pytest.skip(reason)
    return PG_URL


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[tuple[str, str]]:
    """(url, schema name) of a schema no other test uses; dropped on exit."""
    url = await postgres_url()
    schema = f"bb_test_{secrets.token_hex(6)}"
    try:
        yield url, schema
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend."""
    if request.param == "sqlite":
        async with SqliteStore(tmp_path / "contract.db") as sqlite_store:
            yield sqlite_store
        return
    async with (
        fresh_schema() as (url, schema),
        PostgresStore(url, schema=schema, max_size=8) as pg_store,
    ):
        yield pg_store


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[str, str]]:
    async with fresh_schema() as where:
        yield where


async def raw_execute(store: Store, sql: str) -> None:
    """Run SQL on the store's database over a connection of its own (not the store's)."""
    if isinstance(store, SqliteStore):
        async with aiosqlite.connect(store.path) as db:
            await db.execute(sql)
            await db.commit()
        return
    assert isinstance(store, PostgresStore) and store.schema is not None
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


DB_ERRORS = (sqlite3.DatabaseError, asyncpg.PostgresError)


# --- values ----------------------------------------------------------------------------------


def origin(user: str = "alice", channel: str = "general", workspace: str = "ws") -> Origin:
    return Origin(
        platform="test",
        workspace_id=workspace,
        channel_id=channel,
        user_id=user,
        reply_handle=f"handle-{user}",
    )


def job(
    key: str,
    *,
    user: str = "alice",
    channel: str = "general",
    workspace: str = "ws",
    provider: str = "p",
    estimate: int = EST,
    **fields: Any,
) -> Job:
    return Job(
        id=f"job-{key}",
        origin=origin(user, channel, workspace),
        request=ImageRequest(prompt=f"a lighthouse, take {key}"),
        provider=provider,
        estimate_micros=estimate,
        idempotency_key=f"idem-{key}",
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )


def cap(
    scope: CapScope,
    scope_id: str,
    limit: int,
    period: Period = Period.DAY,
    workspace: str = "ws",
) -> BudgetCap:
    return BudgetCap(
        scope=scope, workspace_id=workspace, scope_id=scope_id, period=period, limit_micros=limit
    )


def image(job_id: str, index: int, cost: int = 20_000, **fields: Any) -> ResultImage:
    return ResultImage(
        job_id=job_id,
        index=index,
        media_key=f"{index:064x}.png",
        mime_type="image/png",
        width=1024,
        height=768,
        seed=2**40 + index,
        cost_micros=cost,
        provider_url=f"https://cdn.example/{job_id}/{index}.png",
        **fields,
    )


async def queue(store: Store, *jobs: Job, caps: list[BudgetCap] | None = None) -> list[Job]:
    return [(await store.enqueue(j, caps or [], NOW)).job for j in jobs]


async def held_spent(store: Store, c: BudgetCap, now: datetime = NOW) -> tuple[int, int]:
    (usage,) = await store.usage([c], now)
    return usage.spent_micros, usage.held_micros


# --- the queue -------------------------------------------------------------------------------


async def test_a_job_round_trips_every_field_and_times_come_back_in_utc(store: Store) -> None:
    (parent,) = await queue(store, job("parent"))
    request = ImageRequest(
        prompt="put the cat on the sofa — ünïcode, \"quotes\" and 'apostrophes'",
        model="nano-banana-pro",
        references=(
            ReferenceImage(
                media_key="ab" * 32 + ".png",
                mime_type="image/png",
                width=512,
                height=384,
                source="cat.png",
            ),
        ),
        aspect_ratio="16:9",
        resolution="2K",
        seed=2**31 + 7,
        number_results=3,
        output_format="WEBP",
        output_quality=85,
        temperature=0.7,
        top_p=0.95,
        system_prompt="be brief",
        safety_tolerance="low",
        check_content=True,
    )
    child = Job(
        id="job-child",
        origin=Origin(
            platform="discord",
            workspace_id="ws",
            channel_id="c1",
            user_id="bob",
            reply_handle="tok:123",
            channel_nsfw=True,
        ),
        request=request,
        action=JobAction.VARY,
        parent_job_id=parent.id,
        parent_index=2,
        provider="p",
        estimate_micros=123_456,
        idempotency_key="idem-child",
        notices=("safety tolerance clamped to 'low'",),
        created_at=NOW - timedelta(days=3),
        updated_at=NOW - timedelta(days=3),
    )
    in_berlin = NOW.astimezone(timezone(timedelta(hours=1)))
    result = await store.enqueue(child, [], in_berlin)
    assert result.created and result.position == 2
    stored = result.job
    assert stored.model_dump(exclude={"created_at", "updated_at"}) == child.model_dump(
        exclude={"created_at", "updated_at"}
    )
    assert stored.created_at == stored.updated_at == NOW  # the enqueue time, not the job's
    assert stored.created_at.utcoffset() == timedelta(0)
    assert await store.get_job("job-child") == stored


async def test_a_known_idempotency_key_returns_the_stored_job_and_reserves_nothing(
    store: Store,
) -> None:
    user_cap = cap(CapScope.USER, "alice", EST)
    await store.set_cap(user_cap, NOW)
    first = await store.enqueue(job("a"), [user_cap], NOW)
    # A retried platform request: same key, another generated id, and the cap now full.
    again = await store.enqueue(job("a").model_copy(update={"id": "job-other"}), [user_cap], NOW)
    assert first.created and not again.created
    assert again.job == first.job and again.position == first.position == 1
    assert await store.ledger_totals() == {"reserve": EST}
    with pytest.raises(NotFound):
        await store.get_job("job-other")


async def test_claim_set_task_id_and_finish_store_results_and_settle(store: Store) -> None:
    user_cap = cap(CapScope.USER, "alice", 1_000_000)
    await store.set_cap(user_cap, NOW)
    (queued,) = await queue(store, job("a", notices=("clamped",)), caps=[user_cap])
    claimed = await store.claim("p", NOW + timedelta(seconds=1))
    assert claimed is not None and claimed.id == queued.id
    assert claimed.status is JobStatus.RUNNING
    assert claimed.updated_at == NOW + timedelta(seconds=1)
    assert await store.claim("p", NOW) is None
    await store.set_task_id(queued.id, "task-uuid-1", NOW)
    assert (await store.get_job(queued.id)).provider_task_id == "task-uuid-1"
    images = [image(queued.id, 0, nsfw=True, withheld=True), image(queued.id, 1)]
    done = await store.finish(
        queued.id, images, 40_000, NOW + timedelta(seconds=9), notices=("1 of 3 failed",)
    )
    assert done.status is JobStatus.SUCCEEDED and done.cost_micros == 40_000
    assert done.notices == ("clamped", "1 of 3 failed")
    assert done.updated_at == NOW + timedelta(seconds=9) and done.created_at == NOW
    assert await store.get_results(queued.id) == images
    assert await store.get_job(queued.id) == done
    assert await held_spent(store, user_cap) == (40_000, 0)
    assert await store.ledger_totals() == {"reserve": EST, "release": -EST, "charge": 40_000}


async def test_fail_and_cancel_refund_in_full(store: Store) -> None:
    user_cap = cap(CapScope.USER, "alice", 1_000_000)
    await store.set_cap(user_cap, NOW)
    a, b = await queue(store, job("a"), job("b", estimate=70_000), caps=[user_cap])
    assert await held_spent(store, user_cap) == (0, 170_000)
    await store.claim("p", NOW)
    failed = await store.fail(a.id, "provider_unavailable", "x" * 5000, NOW)
    cancelled = await store.fail(b.id, "cancelled", "by the user", NOW, cancelled=True)
    assert failed.status is JobStatus.FAILED and failed.error_code == "provider_unavailable"
    assert failed.error_message == "x" * 2000
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cost_micros == 0
    assert await held_spent(store, user_cap) == (0, 0)
    assert await store.ledger_totals() == {"reserve": 170_000, "release": -170_000}
    assert await store.get_results(a.id) == []


async def test_only_a_queued_job_can_be_cancelled(store: Store) -> None:
    """A cancel that loses the race with a claim changes nothing: the provider bills
    started work, so the job keeps its reservation and runs on."""
    (a,) = await queue(store, job("a"))
    claimed = await store.claim("p", NOW)
    assert claimed is not None and claimed.id == a.id
    still = await store.fail(a.id, "cancelled", "by the user", NOW, cancelled=True)
    assert still.status is JobStatus.RUNNING
    assert await store.ledger_totals() == {"reserve": 100_000}


async def test_settlement_is_idempotent_and_a_terminal_job_never_changes(store: Store) -> None:
    a, b = await queue(store, job("a"), job("b"))
    done = await store.finish(a.id, [image(a.id, 0)], 30_000, NOW)
    assert await store.finish(a.id, [image(a.id, 0)], 99_999, NOW + timedelta(hours=1)) == done
    assert await store.fail(a.id, "late", "late", NOW + timedelta(hours=1)) == done
    failed = await store.fail(b.id, "x", "y", NOW)
    assert await store.finish(b.id, [], 50_000, NOW) == failed
    assert await store.get_results(b.id) == []
    assert await store.ledger_totals() == {
        "reserve": 2 * EST,
        "release": -2 * EST,
        "charge": 30_000,
    }


async def test_unknown_jobs_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_job("nope")
    with pytest.raises(NotFound):
        await store.finish("nope", [], 1, NOW)
    with pytest.raises(NotFound):
        await store.fail("nope", "x", "y", NOW)
    assert await store.ledger_totals() == {}


async def test_claims_go_round_robin_between_users_per_provider(store: Store) -> None:
    alice = await queue(store, *(job(f"a{i}", user="alice") for i in range(4)))
    positions = []
    for key, user in (("b0", "bob"), ("c0", "carol"), ("b1", "bob")):
        positions.append((await store.enqueue(job(key, user=user), [], NOW)).position)
    assert positions == [2, 3, 5]  # bob and carol go before alice's second job
    # The same person in another workspace is someone else.
    await store.enqueue(job("x0", user="alice", workspace="other"), [], NOW)
    await store.enqueue(job("q0", user="dave", provider="q"), [], NOW)
    order = []
    while (claimed := await store.claim("p", NOW)) is not None:
        order.append((claimed.origin.workspace_id, claimed.origin.user_id))
    assert order == [
        ("ws", "alice"),
        ("ws", "bob"),
        ("ws", "carol"),
        ("other", "alice"),
        ("ws", "alice"),
        ("ws", "bob"),
        ("ws", "alice"),
        ("ws", "alice"),
    ]
    assert alice[0].id != alice[1].id
    q = await store.claim("q", NOW)
    assert q is not None and q.origin.user_id == "dave"


async def test_a_user_joining_late_joins_the_round_being_served_not_an_earlier_one(
    store: Store,
) -> None:
    await queue(store, *(job(f"a{i}", user="alice") for i in range(4)))  # rounds 0..3
    for _ in range(2):
        assert await store.claim("p", NOW) is not None  # rounds 0 and 1 served
    late = await store.enqueue(job("b0", user="bob"), [], NOW)
    assert late.position == 2  # round 2: after alice's a2, before her a3
    order = []
    while (claimed := await store.claim("p", NOW)) is not None:
        order.append(claimed.id)
    assert order == ["job-a2", "job-b0", "job-a3"]


async def test_claim_by_id_takes_exactly_that_job_while_it_is_queued(store: Store) -> None:
    a, b = await queue(store, job("a"), job("b", user="bob"))
    claimed = await store.claim("p", NOW, job_id=b.id)
    assert claimed is not None and claimed.id == b.id
    assert await store.claim("p", NOW, job_id=b.id) is None
    assert await store.claim("q", NOW, job_id=a.id) is None  # another provider's claim
    assert (await store.get_job(a.id)).status is JobStatus.QUEUED


async def test_concurrent_claims_never_return_a_job_twice(store: Store) -> None:
    queued = await queue(store, *(job(f"{u}{i}", user=u) for u in "abcde" for i in range(6)))
    claimed = await asyncio.gather(*(store.claim("p", NOW) for _ in range(45)))
    ids = [c.id for c in claimed if c is not None]
    assert len(ids) == len(set(ids)) == 30
    assert set(ids) == {j.id for j in queued}
    assert claimed.count(None) == 15
    assert len(await store.jobs_in_status("running", 100)) == 30


async def test_requeue_puts_back_only_running_jobs_that_never_reached_a_provider(
    store: Store,
) -> None:
    a, b, c = await queue(store, job("a"), job("b", user="bob"), job("c", user="carol"))
    await store.claim("p", NOW, job_id=a.id)
    await store.claim("p", NOW, job_id=b.id)
    await store.set_task_id(b.id, "task-b", NOW)
    later = NOW + timedelta(minutes=1)
    for j in (a, b, c):
        await store.requeue(j.id, later)
    requeued = await store.get_job(a.id)
    assert requeued.status is JobStatus.QUEUED and requeued.updated_at == later
    assert (await store.get_job(b.id)).status is JobStatus.RUNNING
    assert (await store.get_job(c.id)).updated_at == NOW  # was queued: untouched
    assert await store.ledger_totals() == {"reserve": 3 * EST}


async def test_reroute_queues_a_running_job_for_another_provider(store: Store) -> None:
    (a,) = await queue(store, job("a"))
    assert await store.reroute(a.id, "q", NOW) is None  # not running
    await store.claim("p", NOW)
    await store.set_task_id(a.id, "task-a", NOW)
    rerouted = await store.reroute(a.id, "q", NOW + timedelta(seconds=5))
    assert rerouted is not None
    assert (rerouted.provider, rerouted.status, rerouted.provider_task_id) == (
        "q",
        JobStatus.QUEUED,
        None,
    )
    assert await store.claim("p", NOW) is None
    again = await store.claim("q", NOW)
    assert again is not None and again.id == a.id
    assert await store.ledger_totals() == {"reserve": EST}  # the reservation stays


# --- money -----------------------------------------------------------------------------------


async def test_over_a_cap_is_refused_naming_the_tightest_cap_and_nothing_is_stored(
    store: Store,
) -> None:
    caps = [
        cap(CapScope.CHANNEL, "general", 1_000_000, Period.WEEK),
        cap(CapScope.USER, "alice", 250_000),
        cap(CapScope.WORKSPACE, "ws", 5_000_000, Period.MONTH),
    ]
    for c in caps:
        await store.set_cap(c, NOW)
    await queue(store, job("a"), job("b"), caps=caps)
    with pytest.raises(BudgetExceeded) as caught:
        await store.enqueue(job("c"), caps, NOW)
    error = caught.value
    assert error.cap == "your daily cap"
    assert (error.limit_micros, error.left_micros, error.estimate_micros) == (250_000, 50_000, EST)
    assert error.resets_at == datetime(2026, 3, 19, tzinfo=UTC)
    with pytest.raises(NotFound):
        await store.get_job("job-c")
    assert await store.ledger_totals() == {"reserve": 2 * EST}
    assert len(await store.jobs_in_status("queued", 10)) == 2
    # Exactly the room that is left still fits; other people are not held by alice's cap.
    await store.enqueue(job("d", estimate=50_000), caps, NOW)
    await store.enqueue(job("e", user="bob"), caps[:1] + caps[2:], NOW)
    usages = await store.usage(caps, NOW)
    assert [(u.spent_micros, u.held_micros, u.left_micros) for u in usages] == [
        (0, 350_000, 650_000),
        (0, 250_000, 0),
        (0, 350_000, 4_650_000),
    ]
    assert await store.verify_totals(NOW) == []


async def test_a_total_cap_refuses_with_no_reset(store: Store) -> None:
    total = cap(CapScope.WORKSPACE, "ws", 150_000, Period.TOTAL)
    await store.set_cap(total, NOW)
    await store.enqueue(job("a"), [total], NOW)
    with pytest.raises(BudgetExceeded) as caught:
        await store.enqueue(job("b", user="bob"), [total], NOW + timedelta(days=400))
    assert caught.value.resets_at is None and caught.value.cap == "this workspace's total cap"


async def test_settling_moves_held_to_spent_and_refunds_make_room(store: Store) -> None:
    user_cap = cap(CapScope.USER, "alice", 250_000)
    await store.set_cap(user_cap, NOW)
    a, b = await queue(store, job("a"), job("b"), caps=[user_cap])
    await store.finish(a.id, [], 30_000, NOW)
    assert await held_spent(store, user_cap) == (30_000, EST)
    await store.fail(b.id, "x", "y", NOW)
    assert await held_spent(store, user_cap) == (30_000, 0)
    await queue(store, job("c"), job("d"), caps=[user_cap])  # 30k + 200k of 250k
    with pytest.raises(BudgetExceeded):
        await store.enqueue(job("e"), [user_cap], NOW)
    assert await store.verify_totals(NOW) == []


async def test_a_job_settles_in_the_period_it_was_reserved_in(store: Store) -> None:
    day = cap(CapScope.USER, "alice", 1_000_000, Period.DAY)
    total = cap(CapScope.USER, "alice", 1_000_000, Period.TOTAL)
    late = datetime(2026, 3, 18, 23, 59, 59, 999_999, tzinfo=UTC)
    next_day = datetime(2026, 3, 19, 0, 0, 1, tzinfo=UTC)
    for c in (day, total):
        await store.set_cap(c, late)
    reserved = await store.enqueue(job("a"), [day, total], late)
    await store.finish(reserved.job.id, [], 40_000, next_day)
    assert await held_spent(store, day, late) == (40_000, 0)
    assert await held_spent(store, day, next_day) == (0, 0)
    assert await held_spent(store, total, next_day) == (40_000, 0)
    assert await store.verify_totals(late) == []
    assert await store.verify_totals(next_day) == []


async def test_the_ledger_is_append_only(store: Store) -> None:
    (a,) = await queue(store, job("a"))
    await store.finish(a.id, [], 30_000, NOW)
    before = await store.ledger_totals()
    with pytest.raises(DB_ERRORS, match="append-only"):
        await raw_execute(store, "UPDATE ledger SET amount_micros = 0")
    with pytest.raises(DB_ERRORS, match="append-only"):
        await raw_execute(store, "DELETE FROM ledger WHERE kind = 'charge'")
    assert (
        await store.ledger_totals() == before == {"reserve": EST, "release": -EST, "charge": 30_000}
    )


async def test_cap_totals_stay_true_to_the_ledger_through_a_mix_of_operations(
    store: Store,
) -> None:
    caps = [
        cap(CapScope.USER, "alice", 400_000, Period.DAY),
        cap(CapScope.USER, "bob", 300_000, Period.WEEK),
        cap(CapScope.CHANNEL, "general", 700_000, Period.MONTH),
        cap(CapScope.CHANNEL, "art", 10_000_000, Period.TOTAL),
        cap(CapScope.WORKSPACE, "ws", 900_000, Period.DAY),
        cap(CapScope.WORKSPACE, "ws", 10_000_000, Period.TOTAL),
    ]
    for c in caps:
        await store.set_cap(c, NOW)
    accepted: list[Job] = []
    refused = 0
    people = [("alice", "general"), ("bob", "general"), ("alice", "art"), ("carol", "art")]
    for i in range(24):
        user, channel = people[i % len(people)]
        j = job(f"m{i}", user=user, channel=channel, estimate=40_000 + 7_000 * (i % 5))
        try:
            accepted.append((await store.enqueue(j, await store.caps_for(j.origin), NOW)).job)
        except BudgetExceeded:
            refused += 1
    assert accepted and refused  # the caps bit
    for i, j in enumerate(accepted):
        if i % 6 == 4:  # cancelled while queued
            await store.fail(j.id, "x", "y", NOW, cancelled=True)
            continue
        await store.claim("p", NOW, job_id=j.id)
        if i % 3 == 0:
            await store.finish(j.id, [image(j.id, 0)], 25_000 + i, NOW)
        elif i % 3 == 1:
            await store.fail(j.id, "x", "y", NOW)
    # A cap changed, one removed and set again, one new: all backfilled from the ledger.
    await store.set_cap(cap(CapScope.USER, "alice", 450_000, Period.DAY), NOW)
    assert await store.remove_cap(caps[2])
    await store.set_cap(caps[2], NOW)
    await store.set_cap(cap(CapScope.USER, "carol", 1_000_000, Period.MONTH), NOW)
    assert await store.verify_totals(NOW) == []
    totals = await store.ledger_totals()
    settled = [j for i, j in enumerate(accepted) if i % 3 != 2]
    assert totals["reserve"] == sum(j.estimate_micros for j in accepted)
    assert totals["release"] == -sum(j.estimate_micros for j in settled)
    usages = await store.usage(caps[-1:], NOW)
    assert usages[0].spent_micros == totals["charge"]
    assert usages[0].held_micros == totals["reserve"] + totals["release"]


async def test_verify_totals_reports_a_cache_that_drifted_from_the_ledger(store: Store) -> None:
    user_cap = cap(CapScope.USER, "alice", 1_000_000)
    await store.set_cap(user_cap, NOW)
    await queue(store, job("a"), caps=[user_cap])
    assert await store.verify_totals(NOW) == []
    await raw_execute(store, "UPDATE cap_totals SET held_micros = held_micros + 1")
    (problem,) = await store.verify_totals(NOW)
    assert problem == "user alice day: cached 0/100001, ledger 0/100000"


async def test_a_cap_set_after_spending_starts_from_the_ledger(store: Store) -> None:
    a, _b, _c = await queue(store, job("a"), job("b"), job("c", user="bob"))
    await store.finish(a.id, [], 30_000, NOW)
    day = cap(CapScope.USER, "alice", 500_000)
    week = cap(CapScope.CHANNEL, "general", 500_000, Period.WEEK)
    await store.set_cap(day, NOW)
    await store.set_cap(week, NOW)
    assert await held_spent(store, day) == (30_000, EST)
    assert await held_spent(store, week) == (30_000, 2 * EST)
    # Changing the limit keeps the totals; removing forgets the cap, not the spending.
    await store.set_cap(day.model_copy(update={"limit_micros": 130_001}), NOW)
    assert await held_spent(store, day) == (30_000, EST)
    with pytest.raises(BudgetExceeded) as caught:
        await store.enqueue(job("d"), await store.caps_for(origin()), NOW)
    assert caught.value.left_micros == 1
    assert await store.remove_cap(day)
    assert not await store.remove_cap(day)
    assert [c.scope for c in await store.caps_for(origin())] == [CapScope.CHANNEL]
    await store.set_cap(day, NOW)
    assert await held_spent(store, day) == (30_000, EST)
    # A new period starts empty.
    assert await held_spent(store, day, NOW + timedelta(days=1)) == (0, 0)
    assert await store.verify_totals(NOW) == []


async def test_caps_for_and_list_caps(store: Store) -> None:
    mine = [
        cap(CapScope.USER, "alice", 1),
        cap(CapScope.USER, "alice", 2, Period.MONTH),
        cap(CapScope.CHANNEL, "general", 3, Period.WEEK),
        cap(CapScope.WORKSPACE, "ws", 4, Period.TOTAL),
    ]
    others = [
        cap(CapScope.USER, "Zed", 5),
        cap(CapScope.CHANNEL, "art", 6),
        cap(CapScope.USER, "alice", 7, workspace="other"),
        cap(CapScope.WORKSPACE, "other", 8, workspace="other"),
    ]
    for c in mine + others:
        await store.set_cap(c, NOW)
    assert sorted(await store.caps_for(origin()), key=lambda c: c.limit_micros) == mine
    assert await store.list_caps("ws") == [
        others[1],
        mine[2],
        others[0],
        mine[0],
        mine[1],
        mine[3],
    ]  # by scope, then scope id in byte order ("Zed" < "alice"), then period
    raised = mine[0].model_copy(update={"limit_micros": 99})
    await store.set_cap(raised, NOW)
    assert raised in await store.list_caps("ws") and mine[0] not in await store.list_caps("ws")
    assert await store.list_caps("nobody") == []
    assert await store.usage([], NOW) == []
    (fresh,) = await store.usage([cap(CapScope.USER, "never", 10)], NOW)
    assert (fresh.spent_micros, fresh.held_micros, fresh.left_micros) == (0, 0, 10)
    assert fresh.resets_at == datetime(2026, 3, 19, tzinfo=UTC)


async def test_spend_by_user_and_channel(store: Store) -> None:
    last_week = NOW - timedelta(days=7)
    old = await store.enqueue(job("old", user="carol"), [], last_week)
    await store.finish(old.job.id, [], 50_000, last_week)
    a1, a2, _a3, b1, _x = await queue(
        store,
        job("a1"),
        job("a2"),
        job("a3", channel="art"),
        job("b1", user="bob"),
        job("x", user="alice", workspace="other"),
    )
    for j, cost in ((a1, 10_000), (a2, 10_000), (b1, 30_000)):
        await store.finish(j.id, [], cost, NOW)
    today = datetime(2026, 3, 18, tzinfo=UTC)
    assert await store.spend_by("ws", CapScope.USER, today, 10) == [
        ("bob", 30_000, 0),
        ("alice", 20_000, EST),
    ]
    assert await store.spend_by("ws", CapScope.USER, None, 10) == [
        ("carol", 50_000, 0),
        ("bob", 30_000, 0),
        ("alice", 20_000, EST),
    ]
    assert await store.spend_by("ws", CapScope.USER, None, 1) == [("carol", 50_000, 0)]
    assert await store.spend_by("ws", CapScope.CHANNEL, today, 10) == [
        ("general", 50_000, 0),
        ("art", 0, EST),
    ]
    assert await store.spend_by("nobody", CapScope.CHANNEL, None, 10) == []


# --- policies and reads ----------------------------------------------------------------------


async def test_policies_per_workspace_and_channel(store: Store) -> None:
    assert await store.get_policy("ws", "") is None
    await store.set_policy("ws", "", ChannelPolicy(max_tolerance="medium"), NOW)
    await store.set_policy(
        "ws", "general", ChannelPolicy(max_tolerance="low", force_check_content=True), NOW
    )
    assert await store.get_policy("ws", "") == ChannelPolicy(max_tolerance="medium")
    assert await store.get_policy("ws", "general") == ChannelPolicy(
        max_tolerance="low", force_check_content=True
    )
    await store.set_policy("ws", "general", ChannelPolicy(max_tolerance="off"), NOW)
    assert await store.get_policy("ws", "general") == ChannelPolicy(max_tolerance="off")
    assert await store.get_policy("other", "general") is None


async def test_queue_positions_follow_claim_order_per_provider(store: Store) -> None:
    a0, a1, b0, q0, q1 = await queue(
        store,
        job("a0"),
        job("a1"),
        job("b0", user="bob"),
        job("q0", provider="q"),
        job("q1", provider="q", user="bob"),
    )
    await store.claim("p", NOW, job_id=a0.id)
    positions = [(j.id, n) for j, n in await store.queue_positions(10)]
    # p: b0 (round 0), a1 (round 1); q: q0, q1 (both round 0)
    assert sorted(positions, key=lambda p: p[0]) == [(a1.id, 2), (b0.id, 1), (q0.id, 1), (q1.id, 2)]
    assert positions[-1] == (a1.id, 2)  # the last round last
    assert len(await store.queue_positions(2)) == 2


async def test_recent_jobs_and_jobs_in_status(store: Store) -> None:
    made = await queue(
        store,
        job("1"),
        job("2", user="bob"),
        job("3"),
        job("4", workspace="other"),
        job("5"),
    )
    recent = await store.recent_jobs("ws", "alice", 2)
    assert [j.id for j in recent] == ["job-5", "job-3"]
    assert [j.id for j in await store.recent_jobs("ws", "alice", 10)] == ["job-5", "job-3", "job-1"]
    assert await store.recent_jobs("ws", "nobody", 10) == []
    await store.claim("p", NOW, job_id=made[4].id)
    await store.claim("p", NOW, job_id=made[0].id)
    assert [j.id for j in await store.jobs_in_status("running", 10)] == ["job-1", "job-5"]
    assert [j.id for j in await store.jobs_in_status("queued", 2)] == ["job-2", "job-3"]
    assert await store.jobs_in_status("succeeded", 10) == []


async def test_a_closed_store_opens_again_with_everything_kept(store: Store) -> None:
    user_cap = cap(CapScope.USER, "alice", 1_000_000)
    await store.set_cap(user_cap, NOW)
    (a,) = await queue(store, job("a"), caps=[user_cap])
    await store.close()
    await store.close()  # twice is fine
    await store.open()  # migrations already applied: nothing to do
    assert await store.get_job(a.id) == a
    assert await held_spent(store, user_cap) == (0, EST)


# --- PostgreSQL: several processes on one database --------------------------------------------


async def test_two_pools_never_reserve_past_a_cap_together(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    estimate = 70_000
    caps = [
        cap(CapScope.USER, "alice", 1_000_000, Period.DAY),
        cap(CapScope.WORKSPACE, "ws", 5_000_000, Period.MONTH),
    ]
    async with (
        PostgresStore(url, schema=schema, max_size=6) as one,
        PostgresStore(url, schema=schema, max_size=6) as two,
    ):
        for c in caps:
            await one.set_cap(c, NOW)

        async def attempt(s: Store, i: int) -> bool:
            try:
                await s.enqueue(job(f"r{i}", estimate=estimate), caps, NOW)
            except BudgetExceeded:
                return False
            return True

        results = await asyncio.gather(*(attempt(one if i % 2 else two, i) for i in range(40)))
        accepted = sum(results)
        assert accepted == 1_000_000 // estimate  # 14: every slot taken, none twice
        (user_usage, ws_usage) = await two.usage(caps, NOW)
        assert user_usage.held_micros == ws_usage.held_micros == accepted * estimate
        assert user_usage.held_micros <= 1_000_000
        assert await one.verify_totals(NOW) == []
        assert await one.ledger_totals() == {"reserve": accepted * estimate}


async def test_two_pools_never_claim_the_same_job(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    async with (
        PostgresStore(url, schema=schema, max_size=8) as one,
        PostgresStore(url, schema=schema, max_size=8) as two,
    ):
        queued = await queue(one, *(job(f"{u}{i}", user=u) for u in "abcdef" for i in range(10)))
        claimed = await asyncio.gather(*(s.claim("p", NOW) for _ in range(45) for s in (one, two)))
        ids = [c.id for c in claimed if c is not None]
        assert len(ids) == len(set(ids)) == len(queued) == 60
        assert claimed.count(None) == 30


async def test_settlements_racing_reservations_keep_totals_true(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    user_cap = cap(CapScope.USER, "alice", 600_000, Period.TOTAL)
    async with (
        PostgresStore(url, schema=schema, max_size=6) as one,
        PostgresStore(url, schema=schema, max_size=6) as two,
    ):
        await one.set_cap(user_cap, NOW)
        first = await queue(one, *(job(f"s{i}") for i in range(5)), caps=[user_cap])

        async def reserve(i: int) -> bool:
            try:
                await two.enqueue(job(f"n{i}"), [user_cap], NOW)
            except BudgetExceeded:
                return False
            return True

        settles = [one.fail(j.id, "x", "y", NOW) for j in first]
        outcomes = await asyncio.gather(*settles, *(reserve(i) for i in range(12)))
        accepted = sum(1 for o in outcomes[len(first) :] if o is True)
        assert 1 <= accepted <= 6
        spent, held = await held_spent(one, user_cap)
        assert (spent, held) == (0, accepted * EST) and held <= 600_000
        assert await two.verify_totals(NOW) == []


async def test_a_cap_set_while_another_pool_reserves_still_matches_the_ledger(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    new_caps = [
        cap(scope, scope_id, 100_000_000, period)
        for scope, scope_id in (
            (CapScope.USER, "alice"),
            (CapScope.CHANNEL, "general"),
            (CapScope.WORKSPACE, "ws"),
        )
        for period in Period
    ]
    async with (
        PostgresStore(url, schema=schema, max_size=6) as one,
        PostgresStore(url, schema=schema, max_size=6) as two,
    ):
        for n, new_cap in enumerate(new_caps):
            # Each new cap's backfill races a burst of reservations it must count.
            known = await two.caps_for(origin())
            await asyncio.gather(
                one.set_cap(new_cap, NOW),
                *(two.enqueue(job(f"c{n}-{i}"), known, NOW) for i in range(6)),
            )
        assert await one.verify_totals(NOW) == []
        total = new_caps[-1]
        assert await held_spent(one, total) == (0, 6 * len(new_caps) * EST)


async def test_processes_starting_at_once_apply_migrations_once(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    stores = [PostgresStore(url, schema=schema, min_size=1, max_size=2) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        try:
            versions = await conn.fetch("SELECT version FROM bananabot_migrations ORDER BY 1")
        finally:
            await conn.close()
        assert [r["version"] for r in versions] == [v for v, _ in pg_migrations()]
        assert len(versions) >= 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_the_ledger_refuses_truncate_too(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    async with PostgresStore(url, schema=schema) as pg:
        await queue(pg, job("a"))
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await raw_execute(pg, "TRUNCATE ledger CASCADE")
        assert await pg.ledger_totals() == {"reserve": EST}


async def test_naive_times_are_refused(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    async with PostgresStore(url, schema=schema) as pg:
        with pytest.raises(ValueError, match="timezone-aware"):
            await pg.enqueue(job("a"), [], NOW.replace(tzinfo=None))
        assert await pg.ledger_totals() == {}


_WORKER = r"""
import asyncio, json, sys
from datetime import UTC, datetime
from bot.budgets import BudgetCap
from bot.errors import BudgetExceeded
from bot.models import ImageRequest, Job, Origin
from bot.storage import PostgresStore

url, schema, name, cap_json = sys.argv[1:5]
now = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
caps = [BudgetCap.model_validate_json(cap_json)]

async def main() -> None:
    async with PostgresStore(url, schema=schema, max_size=5) as store:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def one(i: int) -> bool:
            job = Job(
                id=f"{name}-{i}", origin=Origin(platform="t", workspace_id="ws",
                channel_id="general", user_id=f"u{i % 3}"), request=ImageRequest(prompt="hello"),
                provider="p", estimate_micros=100_000, idempotency_key=f"{name}-{i}",
                created_at=now, updated_at=now)
            try:
                await store.enqueue(job, caps, now)
                return True
            except BudgetExceeded:
                return False

        accepted = sum(await asyncio.gather(*(one(i) for i in range(25))))
        claimed = [j.id for j in await asyncio.gather(*(store.claim("p", now) for _ in range(20)))
                   if j is not None]
        print(json.dumps({"accepted": accepted, "claimed": claimed}))

asyncio.run(main())
"""


async def test_separate_os_processes_share_caps_and_claims(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    ws_cap = cap(CapScope.WORKSPACE, "ws", 2_000_000, Period.DAY)
    async with PostgresStore(url, schema=schema) as pg:
        await pg.set_cap(ws_cap, NOW)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WORKER,
                url,
                schema,
                name,
                ws_cap.model_dump_json(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            for name in ("one", "two")
        ]
        try:
            for proc in procs:  # both connected and migrated; now start them together
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert line == b"ready\n", line
            outputs = await asyncio.gather(
                *(asyncio.wait_for(p.communicate(b"go\n"), 60) for p in procs)
            )
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        results = []
        for (out, err), proc in zip(outputs, procs, strict=True):
            assert proc.returncode == 0, err.decode()
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        accepted = sum(r["accepted"] for r in results)
        assert accepted == 20  # $2.00 / $0.10: all 50 attempts raced for 20 slots
        claimed = [i for r in results for i in r["claimed"]]
        assert len(claimed) == len(set(claimed))
        while (rest := await pg.claim("p", NOW)) is not None:
            claimed.append(rest.id)
        assert len(claimed) == len(set(claimed)) == accepted
        assert await held_spent(pg, ws_cap) == (0, 20 * 100_000)
        assert await pg.verify_totals(NOW) == []
