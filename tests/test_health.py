"""Circuit breakers: a failing provider is skipped by routing and paused by its workers."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from bot.app import assemble_core
from bot.catalog import default_catalog
from bot.errors import ProviderRejected, ProviderUnavailable, SafetyBlocked
from bot.health import BreakerState, ProviderHealth
from bot.media.store import FileMediaStore
from bot.models import ImageRequest
from bot.policy import ChannelPolicy
from bot.storage import SqliteStore
from bot.worker import Worker
from tests.conftest import Core, origin
from tests.fakes.provider import ScriptedProvider

DOWN = ProviderUnavailable("p", "down", 503)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_provider_failures_open_the_breaker_then_one_trial_closes_it() -> None:
    clock = Clock()
    health = ProviderHealth(["p"], failures=3, cooldown=10, clock=clock)
    for _ in range(2):
        health.record("p", DOWN)
    assert health.state("p") is BreakerState.CLOSED
    health.record("p", DOWN)
    assert health.state("p") is BreakerState.OPEN
    assert not health.routable("p") and not health.may_claim("p")
    clock.now = 10
    assert health.may_claim("p"), "one trial after the cooldown"
    assert not health.may_claim("p"), "only one trial at a time"
    health.record("p", None)
    assert health.state("p") is BreakerState.CLOSED and health.may_claim("p")


def test_a_failed_trial_opens_the_breaker_again() -> None:
    clock = Clock()
    health = ProviderHealth(["p"], failures=1, cooldown=5, clock=clock)
    health.record("p", DOWN)
    clock.now = 5
    assert health.may_claim("p")
    health.record("p", DOWN)
    assert health.state("p") is BreakerState.OPEN
    assert health.seconds_until_trial("p") == 5


def test_request_errors_say_nothing_about_the_provider() -> None:
    health = ProviderHealth(["p"], failures=1)
    health.record("p", SafetyBlocked("p", "blocked"))
    health.record("p", ProviderRejected("p", "bad"))
    assert health.state("p") is BreakerState.CLOSED


async def test_routing_prefers_a_healthy_provider(tmp_path: Path) -> None:
    providers = {"a": ScriptedProvider(name="a"), "b": ScriptedProvider(name="b")}
    async with SqliteStore(tmp_path / "r.db") as store, httpx.AsyncClient() as client:
        service, worker, _ = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=FileMediaStore(tmp_path / "m"),
            providers=providers,
            routing=["a", "b"],
            reference_client=client,
            default_policy=ChannelPolicy(),
            concurrency=1,
        )
        health = worker.health  # the breakers routing shares
        request = ImageRequest(prompt="a lighthouse")
        assert (await service.submit(request, origin(), idempotency_key="1")).job.provider == "a"
        for _ in range(5):
            health.record("a", DOWN)
        assert (await service.submit(request, origin(), idempotency_key="2")).job.provider == "b"
        for _ in range(5):
            health.record("b", DOWN)
        third = await service.submit(request, origin(), idempotency_key="3")
        assert third.job.provider == "a", "all down: the job queues for the first"


async def test_workers_stop_claiming_for_an_open_breaker(
    running: Core, scripted: ScriptedProvider
) -> None:
    health = running.worker.health
    for _ in range(5):
        health.record("scripted", DOWN)
    submitted = await running.service.submit(
        ImageRequest(prompt="a lighthouse"), origin(), idempotency_key="k"
    )
    await asyncio.sleep(0.3)
    assert scripted.calls == []
    assert (await running.store.get_job(submitted.job.id)).status.value == "queued"
    health.record("scripted", None)
    running.worker.wake()
    await running.recorder.wait_for(submitted.job.id, "done")
    assert len(scripted.calls) == 1


async def test_a_run_of_provider_failures_opens_the_breaker_in_the_worker(
    running: Core, scripted: ScriptedProvider
) -> None:
    failures = 5  # ProviderHealth's default threshold
    scripted.outcome = lambda task: DOWN  # type: ignore[assignment,return-value]
    jobs = [
        await running.service.submit(
            ImageRequest(prompt="a lighthouse"), origin(f"u{i}"), idempotency_key=f"k{i}"
        )
        for i in range(failures + 2)
    ]
    for submitted in jobs[:failures]:
        await running.recorder.wait_for(submitted.job.id, "failed")
    await asyncio.sleep(0.3)
    assert running.worker.health.state("scripted") is BreakerState.OPEN
    assert len(scripted.calls) <= failures + 1  # at most the in-flight one beyond the threshold


async def test_a_trial_job_that_crashes_inside_bananabot_lets_the_next_trial_run(
    core: Core, scripted: ScriptedProvider
) -> None:
    clock = Clock()
    health = ProviderHealth(core.providers, clock=clock)
    worker = Worker(
        catalog=core.catalog, jobs=core.store, reader=core.store, ledger=core.store,
        media=core.media, providers=core.providers, delivery=core.recorder, health=health,
        idle_poll=0.05,
    )  # fmt: skip
    for _ in range(5):
        health.record("scripted", DOWN)
    clock.now += 31  # past the cool-down: one trial may run
    crashes = [KeyError("a bug, not the provider")]
    scripted.outcome = lambda task: crashes.pop() if crashes else None  # type: ignore[assignment,return-value]
    first, second = [
        await core.service.submit(
            ImageRequest(prompt="a lighthouse"), origin(f"u{i}"), idempotency_key=f"k{i}"
        )
        for i in range(2)
    ]
    running = asyncio.create_task(worker.run())
    try:
        await core.recorder.wait_for(first.job.id, "failed")
        await core.recorder.wait_for(second.job.id, "done")  # the next trial was let through
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert health.state("scripted") is BreakerState.CLOSED
