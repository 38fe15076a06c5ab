"""The Runbase provider against the local Runbase emulator (real HTTP on loopback).

What every provider must do (references, auth, 402, 429/5xx retries on create, deadline,
safety, malformed answers, cancellation, resume) is in tests/test_provider_contract.py; here
is what is Runbase's own: the four-field input, local refusals, 403/429 quota codes, a 429 on
a poll, poll-side faults, and its documented limit: 20 requests per 10 s per key, create and
poll together.
The limiter tests run on an event loop whose clock runs 20x faster than the wall clock
(aiolimiter, the emulator's window and every sleep use the loop's clock), so a 10 s
window takes half a second.
"""

from __future__ import annotations

import asyncio
import io
import selectors
import time
from collections.abc import AsyncIterator, Coroutine
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiolimiter import AsyncLimiter
from PIL import Image
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from bot.catalog import ResolvedSize, default_catalog, validate
from bot.errors import (
    ProviderAuthError,
    ProviderProtocolError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from bot.interfaces import GenerationTask, ReferenceData
from bot.models import ImageRequest, ReferenceImage
from bot.providers.runbase import RunbaseProvider, shared_limiter
from bot.providers.runbase.translate import error_from_status
from bot.providers.runbase.wire import ErrorBody, ErrorInfo
from tests.fakes.provider import png_bytes
from tests.fakes.runbase import RunbaseEmulator

CATALOG = default_catalog()
SPEED = 20.0


@pytest.fixture
async def emulator() -> AsyncIterator[RunbaseEmulator]:
    async with RunbaseEmulator(api_key="test-key") as emu:
        yield emu


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def provider(emu: RunbaseEmulator, http: httpx.AsyncClient, **kw: object) -> RunbaseProvider:
    options: dict[str, object] = {
        "api_key": "test-key",
        "api_url": emu.base_url,
        "client": http,
        "limiter": AsyncLimiter(1000, 1),  # the limit has its own tests below
        "poll_initial": 0.01,
        "poll_max": 0.05,
        "deadline": 10.0,
        "retry_timeout": 10.0,
    }
    options.update(kw)
    return RunbaseProvider(**options)  # type: ignore[arg-type]


def task(
    prompt: str = "a lighthouse at dusk",
    refs: tuple[str | None, ...] = (),
    job: str = "job1",
    **fields: object,
) -> GenerationTask:
    references = tuple(
        ReferenceImage(media_key=f"{i:064x}.png", mime_type="image/png", width=64, height=32)
        for i in range(len(refs))
    )
    request = ImageRequest.model_validate({"prompt": prompt, "references": references, **fields})
    data = tuple(ReferenceData(png_bytes(64, 32), "image/png", 64, 32, url=u) for u in refs)
    return GenerationTask(job, request, validate(CATALOG, request), data)


class TaskIds:
    """Records run ids and how many runs the emulator had when each id was stored."""

    def __init__(self, emu: RunbaseEmulator) -> None:
        self.emu = emu
        self.ids: list[str] = []
        self.runs_at_store: list[int] = []

    async def __call__(self, task_id: str) -> None:
        self.ids.append(task_id)
        self.runs_at_store.append(len(self.emu.runs))


def creates(emu: RunbaseEmulator) -> int:
    return sum(1 for r in emu.requests if r.method == "POST")


# -- success ----------------------------------------------------------------------------------


async def test_generates_a_real_image_at_the_requested_size(
    emulator: RunbaseEmulator, client: httpx.AsyncClient
) -> None:
    emulator.processing_polls = 3
    ids = TaskIds(emulator)
    request = task(model="nano-banana-pro", aspect_ratio="3:2", resolution="2K")
    result = await provider(emulator, client).generate(request, ids)
    assert ids.runs_at_store == [1], "the run id is stored right after create, before polling"
    assert emulator.polls[ids.ids[0]] == 4, "polled while pending and running"
    assert list(emulator.runs) == ids.ids
    assert emulator.runs[ids.ids[0]] == {
        "model": "google/nano-banana-pro",
        "input": {"prompt": "a lighthouse at dusk", "resolution": "2K", "aspect_ratio": "3:2"},
    }
    assert [Image.open(io.BytesIO(i.data)).size for i in result.images] == [(2528, 1696)]
    assert result.cost_micros is None, "no cost reported: the core settles at its estimate"
    assert emulator.downloads == [None], "output links get no API key"
    assert all(r.headers["Authorization"] == "Bearer test-key" for r in emulator.requests)


async def test_references_are_sent_as_links(
    emulator: RunbaseEmulator, client: httpx.AsyncClient
) -> None:
    emulator.cost_usd = Decimal("0.134")
    ids = TaskIds(emulator)
    links = (emulator.reference_url(), emulator.reference_url(32, 32))
    result = await provider(emulator, client).generate(task(refs=links, resolution="1K"), ids)
    data = emulator.runs[ids.ids[0]]["input"]
    assert data["image_urls"] == list(links) and "aspect_ratio" not in data
    assert result.cost_micros == 134_000, "costUsd is kept when Runbase reports it"


@pytest.mark.parametrize(
    ("fields", "size", "parameter"),
    [
        ({}, ResolvedSize("0.5K", "1:1", 512, 512), "resolution"),
        ({"model": "nano-banana-pro"}, ResolvedSize("1K", "4:1", 2048, 512), "aspect_ratio"),
        ({"number_results": 2}, None, "number_results"),
        ({"seed": 7}, None, "seed"),
        ({"safety_tolerance": "low"}, None, "safety_tolerance"),
        ({"output_format": "PNG"}, None, "output_format"),
    ],
)
async def test_what_runbase_does_not_take_is_refused_locally(
    emulator: RunbaseEmulator,
    client: httpx.AsyncClient,
    fields: dict[str, Any],
    size: ResolvedSize | None,
    parameter: str,
) -> None:
    base = task(**fields)
    job = GenerationTask(base.job_id, base.request, size or base.size)
    with pytest.raises(ProviderRejected) as refused:
        await provider(emulator, client).generate(job, TaskIds(emulator))
    assert refused.value.parameter == parameter and emulator.requests == []


# -- errors -------------------------------------------------------------------------------------


# 402 insufficient_balance is in the contract suite; these two are Runbase's own quota answers.
@pytest.mark.parametrize("flag", ["spend_limit", "usage_exceeded"])
async def test_a_spent_key_is_a_quota_error_and_not_retried(
    emulator: RunbaseEmulator, client: httpx.AsyncClient, flag: str
) -> None:
    setattr(emulator, flag, True)
    with pytest.raises(ProviderQuotaError):
        await provider(emulator, client).generate(task(), TaskIds(emulator))
    assert len(emulator.requests) == 1 and emulator.charges == []


async def test_a_body_runbase_rejects_is_not_retried(
    emulator: RunbaseEmulator, client: httpx.AsyncClient
) -> None:
    wrong = provider(emulator, client, model_ids={"nano-banana-2": "google/nano-banana-9"})
    with pytest.raises(ProviderRejected) as rejected:
        await wrong.generate(task(), TaskIds(emulator))
    assert (rejected.value.status, rejected.value.parameter) == (400, "model_not_found")
    assert len(emulator.requests) == 1


async def test_a_rate_limit_on_a_poll_is_retried_after_retry_after(
    emulator: RunbaseEmulator, client: httpx.AsyncClient
) -> None:
    scheduled: list[RetryDetails] = []
    saved = get_on_retry_hooks()
    set_on_retry_hooks([scheduled.append])
    emulator.fail_next(429, retry_after=0.3, on="poll")
    try:
        await provider(emulator, client).generate(task(), TaskIds(emulator))
    finally:
        set_on_retry_hooks(saved)
    assert [r.wait_for for r in scheduled] == [1.0], "Retry-After: 1 (0.3 rounded up) honoured"
    assert isinstance(scheduled[0].caused_by, ProviderRateLimited)
    assert len(emulator.charges) == 1 and creates(emulator) == 1


async def test_server_errors_drops_and_hangs_are_retried_without_a_second_run(
    emulator: RunbaseEmulator,
) -> None:
    emulator.fail_next(500, on="create")
    emulator.fail_next(503, on="poll")
    emulator.fail_next("drop", on="poll")
    emulator.fail_next("hang", seconds=30.0, on="poll")
    async with httpx.AsyncClient(timeout=0.5) as quick:
        result = await provider(emulator, quick).generate(task(), TaskIds(emulator))
    assert len(result.images) == 1 and len(emulator.charges) == 1


async def test_persistent_server_errors_give_up_as_unavailable(
    emulator: RunbaseEmulator, client: httpx.AsyncClient
) -> None:
    emulator.fail_next(500, count=10)
    with pytest.raises(ProviderUnavailable):
        await provider(emulator, client, attempts=3).generate(task(), TaskIds(emulator))
    assert len(emulator.requests) == 3 and emulator.charges == []


async def test_a_refused_connection_is_unavailable_and_not_sent(
    client: httpx.AsyncClient,
) -> None:
    async with RunbaseEmulator() as gone:
        url = gone.base_url
    closed = provider(gone, client, api_url=url, attempts=2)
    with pytest.raises(ProviderUnavailable) as failed:
        await closed.generate(task(), TaskIds(gone))
    assert failed.value.sent is False


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "missing_api_key", ProviderAuthError),
        (403, "ip_not_allowed", ProviderAuthError),
        (403, "api_key_spend_limit_exceeded", ProviderQuotaError),
        (402, "insufficient_balance", ProviderQuotaError),
        (429, "USAGE_EXCEEDED", ProviderQuotaError),
        (429, "RATE_LIMITED", ProviderRateLimited),
        (400, "invalid_input", ProviderRejected),
        (500, "", ProviderUnavailable),
    ],
)
def test_http_errors_map_by_status_and_code(
    status: int, code: str, expected: type[Exception]
) -> None:
    error = error_from_status(status, ErrorBody(error=ErrorInfo(code=code)), None)
    assert type(error) is expected and error.status == status


# -- resume ----------------------------------------------------------------------------------


async def test_resume_never_creates_a_run(
    emulator: RunbaseEmulator, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ProviderProtocolError, match="no run"):
        await provider(emulator, client).resume(task(), "run_missing")
    assert creates(emulator) == 0 and emulator.runs == {}


# -- the shared limit: 20 requests per 10 s per key -----------------------------------------------


class _FastSelector(selectors.DefaultSelector):
    """Waits 1/SPEED of what the loop asks, so loop-clock timers fire on time."""

    def select(self, timeout: float | None = None) -> list[Any]:
        return super().select(None if timeout is None else timeout / SPEED)


class _FastClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock runs SPEED times faster than ``time.monotonic``."""

    def __init__(self) -> None:
        self._origin = time.monotonic()
        super().__init__(_FastSelector())

    def time(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * SPEED


def run_fast(scenario: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=_FastClockLoop) as runner:
        return runner.run(scenario)


def most_in_window(times: list[float], window: float = 10.0) -> int:
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


def test_a_plain_limiter_of_20_per_10s_would_break_the_limit_and_ours_does_not() -> None:
    async def grants(limiter: AsyncLimiter, count: int) -> list[float]:
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(count):
            async with limiter:
                times.append(loop.time())
        return times

    plain = run_fast(grants(AsyncLimiter(20, 10), 45))
    ours = run_fast(grants(shared_limiter(), 45))
    assert most_in_window(plain) > 30, "leaky bucket: a burst of 20, then 2/s on top"
    assert most_in_window(ours) <= 20
    assert most_in_window(ours, 11.0) <= 20, "one second of jitter is absorbed"


def test_fifty_concurrent_generations_through_one_limiter_stay_within_the_limit() -> None:
    async def scenario() -> tuple[RunbaseEmulator, list[int], float]:
        async with (
            RunbaseEmulator(api_key="k", processing_polls=0) as emu,
            httpx.AsyncClient(timeout=60.0) as http,
        ):
            emu.image_size = (16, 16)
            limiter = shared_limiter()
            options = {"poll_initial": 1.0, "poll_max": 2.0, "deadline": 3600.0}
            runbase = provider(emu, http, api_key="k", limiter=limiter, **options)
            started = asyncio.get_running_loop().time()
            results = await asyncio.gather(
                *(runbase.generate(task(job=f"job{n}"), TaskIds(emu)) for n in range(50))
            )
            elapsed = asyncio.get_running_loop().time() - started
            return emu, [len(r.images) for r in results], elapsed

    wall = time.monotonic()
    emu, images, elapsed = run_fast(scenario())
    assert images == [1] * 50 and len(emu.charges) == 50
    assert len(emu.requests) >= 100, "a create and at least one poll per generation"
    assert emu.rate_limited == 0 and emu.max_in_window <= 20
    assert elapsed >= 40.0, "100 requests at <= 20 per 10 s need 40+ s of (fast) loop time"
    assert time.monotonic() - wall < 30.0
