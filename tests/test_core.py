"""The core end to end on SQLite: submit, queue, fairness, workers, settlement and refunds."""

from __future__ import annotations

import asyncio

import pytest

from bot.budgets import BudgetCap, CapScope, Period
from bot.errors import (
    INTERRUPTED,
    PROVIDER_REMOVED,
    BudgetExceeded,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    SafetyBlocked,
)
from bot.messages import render_error, render_failure
from bot.models import Done, Failed, ImageRequest, JobAction, JobStatus, Queued
from bot.policy import ChannelPolicy
from bot.service import utcnow
from bot.worker import Worker
from tests.conftest import Core, origin
from tests.fakes.provider import ScriptedProvider

NB2_1K = 68_950


def req(**fields: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse at dusk", **fields})


async def cap(
    core: Core, scope: CapScope, scope_id: str, usd_micros: int, period: Period = Period.DAY
) -> BudgetCap:
    c = BudgetCap(
        scope=scope, workspace_id="ws", scope_id=scope_id, period=period, limit_micros=usd_micros
    )
    await core.store.set_cap(c, utcnow())
    return c


async def test_submit_stores_the_job_and_calls_no_provider(
    core: Core, scripted: ScriptedProvider
) -> None:
    submitted = await core.service.submit(req(), origin(), idempotency_key="k1")
    assert submitted.position == 1 and submitted.created
    assert submitted.estimate_micros == NB2_1K
    assert scripted.calls == []
    stored = await core.store.get_job(submitted.job.id)
    assert stored.status is JobStatus.QUEUED
    assert core.recorder.kinds(submitted.job.id) == ["queued"]


async def test_a_job_runs_settles_to_the_provider_cost_and_is_delivered(
    running: Core, scripted: ScriptedProvider
) -> None:
    scripted.cost_micros = 40_000
    user_cap = await cap(running, CapScope.USER, "alice", 1_000_000)
    submitted = await running.service.submit(req(number_results=2), origin(), idempotency_key="k")
    done = await running.recorder.wait_for(submitted.job.id, "done")
    assert isinstance(done, Done)
    assert running.recorder.kinds(submitted.job.id) == ["queued", "generating", "done"]
    assert done.job.cost_micros == 80_000 and done.job.estimate_micros == 2 * NB2_1K
    assert [i.width for i in done.images] == [1024, 1024]
    assert done.budget_left is not None and done.budget_left.left_micros == 1_000_000 - 80_000
    (usage,) = await running.store.usage([user_cap], utcnow())
    assert (usage.spent_micros, usage.held_micros) == (80_000, 0)
    totals = await running.store.ledger_totals()
    assert totals == {"reserve": 2 * NB2_1K, "release": -2 * NB2_1K, "charge": 80_000}


async def test_a_provider_without_a_cost_settles_at_the_estimate(
    running: Core, scripted: ScriptedProvider
) -> None:
    scripted.cost_micros = None
    submitted = await running.service.submit(req(), origin(), idempotency_key="k")
    done = await running.recorder.wait_for(submitted.job.id, "done")
    assert done.job.cost_micros == NB2_1K


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailable("scripted", "down", 503),
        SafetyBlocked("scripted", "blocked"),
    ],
)
async def test_a_failed_or_safety_blocked_job_is_refunded_in_full(
    running: Core, scripted: ScriptedProvider, error: Exception
) -> None:
    scripted.outcome = lambda task: error  # type: ignore[assignment,return-value]
    user_cap = await cap(running, CapScope.USER, "alice", 500_000)
    submitted = await running.service.submit(req(), origin(), idempotency_key="k")
    failed = await running.recorder.wait_for(submitted.job.id, "failed")
    assert isinstance(failed, Failed) and failed.error_code == error.code  # type: ignore[attr-defined]
    assert failed.refunded_micros == NB2_1K
    (usage,) = await running.store.usage([user_cap], utcnow())
    assert (usage.spent_micros, usage.held_micros) == (0, 0)
    job = await running.store.get_job(submitted.job.id)
    assert job.status is JobStatus.FAILED and job.cost_micros == 0


async def test_over_a_cap_is_refused_naming_the_cap_and_nothing_is_stored(core: Core) -> None:
    await cap(core, CapScope.CHANNEL, "general", 100_000, Period.WEEK)
    await core.service.submit(req(), origin(), idempotency_key="k1")
    with pytest.raises(BudgetExceeded) as caught:
        await core.service.submit(req(), origin(user="bob"), idempotency_key="k2")
    error = caught.value
    assert error.cap == "this channel's weekly cap"
    assert (error.limit_micros, error.left_micros, error.estimate_micros) == (
        100_000,
        100_000 - NB2_1K,
        NB2_1K,
    )
    assert error.resets_at is not None and error.resets_at.weekday() == 0
    assert await core.store.ledger_totals() == {"reserve": NB2_1K}


async def test_concurrent_submits_never_reserve_past_a_cap(core: Core) -> None:
    user_cap = await cap(core, CapScope.USER, "alice", 500_000)
    workspace_cap = await cap(core, CapScope.WORKSPACE, "ws", 2_000_000)

    async def one(i: int) -> bool:
        try:
            await core.service.submit(req(), origin(), idempotency_key=f"k{i}")
            return True
        except BudgetExceeded:
            return False

    accepted = sum(await asyncio.gather(*(one(i) for i in range(60))))
    assert accepted == 500_000 // NB2_1K  # 7
    usages = await core.store.usage([user_cap, workspace_cap], utcnow())
    assert usages[0].held_micros == accepted * NB2_1K <= 500_000
    assert usages[1].held_micros == usages[0].held_micros
    assert await core.store.verify_totals(utcnow()) == []


async def test_a_retried_platform_request_makes_no_second_job(core: Core) -> None:
    first = await core.service.submit(req(), origin(), idempotency_key="interaction-1")
    again = await core.service.submit(req(), origin(), idempotency_key="interaction-1")
    assert again.job.id == first.job.id and not again.created
    assert await core.store.ledger_totals() == {"reserve": NB2_1K}


async def test_round_robin_between_users(core: Core) -> None:
    alice = [
        await core.service.submit(req(), origin("alice"), idempotency_key=f"a{i}") for i in range(5)
    ]
    bob = await core.service.submit(req(), origin("bob"), idempotency_key="b0")
    carol = await core.service.submit(req(), origin("carol"), idempotency_key="c0")
    assert [a.position for a in alice] == [1, 2, 3, 4, 5]
    assert (bob.position, carol.position) == (2, 3)
    order = []
    while (job := await core.store.claim("scripted", utcnow())) is not None:
        order.append(job.origin.user_id)
    assert order == ["alice", "bob", "carol", "alice", "alice", "alice", "alice"]


async def test_queue_positions_reach_the_adapter_as_jobs_start(
    core: Core, scripted: ScriptedProvider
) -> None:
    scripted.gate = asyncio.Event()
    jobs = [
        await core.service.submit(req(), origin(f"u{i}"), idempotency_key=f"k{i}") for i in range(4)
    ]
    task = asyncio.create_task(core.worker.run())
    try:
        last = jobs[-1].job.id
        async with asyncio.timeout(10):
            while not any(
                isinstance(u, Queued) and u.job.id == last and u.position == 2
                for u in core.recorder.updates
            ):
                await asyncio.sleep(0.01)
        scripted.gate.set()
        await core.recorder.wait_for(last, "done")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_policy_clamps_and_the_notice_is_kept_on_the_job(core: Core) -> None:
    await core.store.set_policy("ws", "general", ChannelPolicy(max_tolerance="low"), utcnow())
    submitted = await core.service.submit(
        req(safety_tolerance="off"), origin(), idempotency_key="k"
    )
    assert submitted.job.request.safety_tolerance == "low"
    assert "'off'" in submitted.notices[0]
    stored = await core.store.get_job(submitted.job.id)
    assert stored.notices == submitted.notices


async def test_nsfw_results_are_withheld_where_the_channel_does_not_allow_them(
    running: Core, scripted: ScriptedProvider
) -> None:
    scripted.nsfw = True
    sfw = await running.service.submit(req(), origin(), idempotency_key="k1")
    nsfw = await running.service.submit(
        req(), origin(channel="lounge", nsfw=True), idempotency_key="k2"
    )
    sfw_done = await running.recorder.wait_for(sfw.job.id, "done")
    nsfw_done = await running.recorder.wait_for(nsfw.job.id, "done")
    assert isinstance(sfw_done, Done) and isinstance(nsfw_done, Done)
    assert sfw_done.images[0].withheld and not nsfw_done.images[0].withheld


async def test_vary_upscale_and_edit_make_child_jobs_with_the_right_requests(
    running: Core, scripted: ScriptedProvider
) -> None:
    parent = await running.service.submit(
        req(aspect_ratio="16:9", resolution="1K", seed=5), origin(), idempotency_key="p"
    )
    await running.recorder.wait_for(parent.job.id, "done")
    clicker = origin("bob")
    vary = await running.service.act(JobAction.VARY, parent.job.id, 0, clicker, idempotency_key="v")
    assert vary.job.request.seed not in (None, 5)
    assert vary.job.request.model_dump(exclude={"seed"}) == parent.job.request.model_dump(
        exclude={"seed"}
    )
    upscale = await running.service.act(
        JobAction.UPSCALE, parent.job.id, 0, clicker, idempotency_key="u"
    )
    up = upscale.job.request
    assert (up.resolution, up.aspect_ratio, up.width, len(up.references)) == ("4K", "16:9", None, 1)
    assert upscale.job.estimate_micros == 152_950 + 280
    edit = await running.service.act(
        JobAction.EDIT, parent.job.id, 0, clicker, idempotency_key="e", instruction="make it snow"
    )
    ed = edit.job.request
    assert (ed.prompt, ed.resolution, ed.aspect_ratio, len(ed.references)) == (
        "make it snow",
        "1K",
        "16:9",
        1,
    )
    for child in (vary, upscale, edit):
        assert child.job.parent_job_id == parent.job.id and child.job.parent_index == 0
        assert child.job.origin.user_id == "bob"
    upscaled = await running.recorder.wait_for(upscale.job.id, "done")
    assert isinstance(upscaled, Done) and (upscaled.images[0].width, upscaled.images[0].height) == (
        5504,
        3072,
    )
    sent = next(c for c in scripted.calls if c.job_id == upscale.job.id)
    assert (
        len(sent.references) == 1
        and max(sent.references[0].width, sent.references[0].height) <= 2048
    )


async def test_actions_refuse_what_makes_no_sense(running: Core) -> None:
    parent = await running.service.submit(req(resolution="4K"), origin(), idempotency_key="p")
    await running.recorder.wait_for(parent.job.id, "done")
    with pytest.raises(InvalidRequest) as caught:
        await running.service.act(
            JobAction.UPSCALE, parent.job.id, 0, origin(), idempotency_key="u"
        )
    assert caught.value.field == "resolution"
    with pytest.raises(InvalidRequest):
        await running.service.act(
            JobAction.EDIT, parent.job.id, 0, origin(), idempotency_key="e", instruction="  "
        )
    with pytest.raises(Exception, match="no image 3"):
        await running.service.act(JobAction.VARY, parent.job.id, 2, origin(), idempotency_key="v")


async def test_drain_finishes_running_jobs_and_claims_no_more(
    core: Core, scripted: ScriptedProvider
) -> None:
    scripted.gate = asyncio.Event()
    jobs = [
        (await core.service.submit(req(), origin(f"u{i}"), idempotency_key=f"k{i}")).job.id
        for i in range(4)
    ]
    task = asyncio.create_task(core.worker.run())
    try:
        async with asyncio.timeout(10):  # concurrency 2: two jobs in flight, two queued
            while len(scripted.calls) < 2:
                await asyncio.sleep(0.01)
        draining = asyncio.create_task(core.worker.drain())
        await asyncio.sleep(0.1)
        assert not draining.done(), "drain returned while jobs were still running"
        scripted.gate.set()
        async with asyncio.timeout(10):
            await draining
        statuses = [(await core.store.get_job(job_id)).status for job_id in jobs]
        assert statuses.count(JobStatus.SUCCEEDED) == 2
        assert statuses.count(JobStatus.QUEUED) == 2, "a draining worker claimed a new job"
        await asyncio.sleep(0.2)  # several idle polls: still nothing claimed
        assert len(scripted.calls) == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_queued_job_can_be_cancelled_and_is_refunded(core: Core) -> None:
    submitted = await core.service.submit(req(), origin(), idempotency_key="k")
    cancelled = await core.service.cancel(submitted.job.id, origin())
    assert cancelled.status is JobStatus.CANCELLED
    assert await core.store.ledger_totals() == {"reserve": NB2_1K, "release": -NB2_1K}


async def test_after_a_restart_running_jobs_resume_by_task_id_or_go_back_to_the_queue(
    core: Core, scripted: ScriptedProvider
) -> None:
    with_task = await core.service.submit(req(), origin("a"), idempotency_key="k1")
    without_task = await core.service.submit(req(), origin("b"), idempotency_key="k2")
    first = await core.store.claim("scripted", utcnow())
    second = await core.store.claim("scripted", utcnow())
    assert first is not None and second is not None
    await core.store.set_task_id(with_task.job.id, "task-123", utcnow())
    # the previous process died here; a new worker starts
    task = asyncio.create_task(core.worker.run())
    try:
        await core.recorder.wait_for(with_task.job.id, "done")
        await core.recorder.wait_for(without_task.job.id, "done")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(t.job_id, tid) for t, tid in scripted.resumed] == [(with_task.job.id, "task-123")]
    assert [c.job_id for c in scripted.calls] == [without_task.job.id]


async def test_settlement_is_idempotent(running: Core) -> None:
    submitted = await running.service.submit(req(), origin(), idempotency_key="k")
    done = await running.recorder.wait_for(submitted.job.id, "done")
    again = await running.store.finish(submitted.job.id, [], 1, utcnow())
    refunded = await running.store.fail(submitted.job.id, "x", "y", utcnow())
    assert again.cost_micros == done.job.cost_micros == refunded.cost_micros
    totals = await running.store.ledger_totals()
    assert totals["reserve"] + totals["release"] == 0


async def test_results_of_another_workspace_cannot_be_acted_on(running: Core) -> None:
    parent = await running.service.submit(req(), origin(), idempotency_key="p")
    await running.recorder.wait_for(parent.job.id, "done")
    stranger = origin("eve").model_copy(update={"workspace_id": "other"})
    with pytest.raises(NotFound):
        await running.service.act(JobAction.VARY, parent.job.id, 0, stranger, idempotency_key="v")


async def test_provider_notices_are_kept_on_the_job(
    running: Core, scripted: ScriptedProvider
) -> None:
    scripted.notices = ("1 of 2 images failed",)
    submitted = await running.service.submit(req(), origin(), idempotency_key="k")
    done = await running.recorder.wait_for(submitted.job.id, "done")
    assert done.job.notices == ("1 of 2 images failed",)
    assert (await running.store.get_job(submitted.job.id)).notices == done.job.notices


def test_an_internal_failure_reads_as_a_sentence_without_internals() -> None:
    text = render_failure("internal_error", "internal error (KeyError)")
    assert "KeyError" not in text and text.endswith("not charged.")
    assert render_failure("provider_timeout", "x").startswith("The image provider did not finish")


async def test_usage_report_shows_own_spend_top_spenders_and_channels(
    running: Core, scripted: ScriptedProvider
) -> None:
    scripted.cost_micros = 10_000
    jobs = [
        await running.service.submit(req(), origin("alice", "general"), idempotency_key="a1"),
        await running.service.submit(req(), origin("alice", "art"), idempotency_key="a2"),
        await running.service.submit(req(), origin("bob", "general"), idempotency_key="b1"),
    ]
    for submitted in jobs:
        await running.recorder.wait_for(submitted.job.id, "done")
    report = await running.service.usage_report(origin("bob"), Period.DAY)
    assert (report.own_spent_micros, report.own_held_micros) == (10_000, 0)
    assert report.top_users == (("alice", 20_000, 0), ("bob", 10_000, 0))
    assert set(report.channels) == {("general", 20_000, 0), ("art", 10_000, 0)}


async def test_queued_jobs_of_a_provider_no_longer_configured_are_refunded_at_start(
    core: Core,
) -> None:
    submitted = await core.service.submit(req(), origin(), idempotency_key="k")
    orphan = await core.store.get_job(submitted.job.id)
    # the same database, now run by a worker without that provider
    worker = Worker(
        catalog=core.catalog,
        jobs=core.store,
        reader=core.store,
        ledger=core.store,
        media=core.media,
        providers={},
        delivery=core.recorder,
    )
    async with asyncio.TaskGroup() as group:
        await worker.recover(group)
    failed = await core.store.get_job(orphan.id)
    assert failed.status is JobStatus.FAILED and failed.error_code == PROVIDER_REMOVED
    assert await core.store.ledger_totals() == {"reserve": NB2_1K, "release": -NB2_1K}
    (told,) = [u for u in core.recorder.updates if isinstance(u, Failed)]
    assert render_failure(told.error_code, told.message) == (
        "The image provider this job was queued for is no longer set up here; please try "
        "again. You were not charged."
    )


def test_a_job_cut_off_on_a_provider_that_cannot_be_polled_says_so() -> None:
    assert render_failure(INTERRUPTED, "x").startswith(
        "bananabot restarted while the image provider was working on this"
    )


def test_not_found_reads_as_its_own_sentence() -> None:
    assert render_error(NotFound("no job abc123")) == "No job abc123."


async def test_quote_checks_policy_and_budget_without_storing_anything(core: Core) -> None:
    await core.store.set_policy("ws", "general", ChannelPolicy(max_tolerance="low"), utcnow())
    quote = await core.service.quote(req(safety_tolerance="off"), origin())
    assert quote.request.safety_tolerance == "low" and quote.estimate_micros == NB2_1K
    await cap(core, CapScope.USER, "alice", NB2_1K - 1)
    with pytest.raises(BudgetExceeded):
        await core.service.quote(req(), origin())
    assert await core.store.ledger_totals() == {}


async def test_a_cap_set_after_spending_counts_what_was_spent_and_stays_true_to_the_ledger(
    running: Core, scripted: ScriptedProvider
) -> None:
    scripted.cost_micros = 30_000
    first = await running.service.submit(req(), origin(), idempotency_key="k1")
    await running.recorder.wait_for(first.job.id, "done")
    user_cap = await cap(running, CapScope.USER, "alice", 100_000)
    (usage,) = await running.store.usage([user_cap], utcnow())
    assert (usage.spent_micros, usage.held_micros) == (30_000, 0)
    scripted.outcome = lambda task: ProviderUnavailable("scripted", "down", 503)  # type: ignore[assignment,return-value]
    second = await running.service.submit(req(), origin(), idempotency_key="k2")
    await running.recorder.wait_for(second.job.id, "failed")
    scripted.outcome = lambda task: None
    third = await running.service.submit(req(), origin(), idempotency_key="k3")
    await running.recorder.wait_for(third.job.id, "done")
    (usage,) = await running.store.usage([user_cap], utcnow())
    assert (usage.spent_micros, usage.held_micros) == (60_000, 0)
    assert await running.store.remove_cap(user_cap)
    await running.store.set_cap(user_cap, utcnow())
    assert await running.store.verify_totals(utcnow()) == []
    with pytest.raises(BudgetExceeded) as caught:
        await running.service.submit(req(), origin(), idempotency_key="k4")
    assert caught.value.left_micros == 40_000
