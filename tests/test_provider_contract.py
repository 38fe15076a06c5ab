"""One provider contract, run for every real provider against its own local emulator.

Each test is one behaviour; the ``contract`` fixture gives, per provider, a :class:`Contract`:
the started emulator, a factory for the provider pointed at it (short polls and deadlines),
hooks that script the emulator in the provider's own wire format, and readers of what the
emulator received. Where a provider's documentation makes a behaviour differ, the
:class:`Contract` says so with a field naming the document (Gemini: a wrong key is 400
``API_KEY_INVALID``, "no credit" is 400 ``FAILED_PRECONDITION``, and a 5xx on the paid,
non-idempotent ``generateContent`` is never retried), and the test asserts that documented
behaviour instead.

Retries are observed through stamina's instrumentation (every provider retries with
stamina): the test reads the wait stamina scheduled and the error that caused it, never
the wall clock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from aiolimiter import AsyncLimiter
from PIL import Image
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from bot.app import assemble_core
from bot.catalog import default_catalog, validate
from bot.errors import (
    BananabotError,
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ReferenceImageError,
    SafetyBlocked,
)
from bot.interfaces import GenerationTask, Provider, ReferenceData
from bot.media.store import FileMediaStore
from bot.messages import render_error
from bot.models import Failed, ImageRequest, JobStatus, ReferenceImage
from bot.policy import ChannelPolicy
from bot.providers.gemini.client import GeminiProvider
from bot.providers.runbase import RunbaseProvider
from bot.providers.runflow import RunflowProvider
from bot.providers.runware.client import RunwareProvider
from bot.storage import SqliteStore
from tests.conftest import Recorder, origin
from tests.fakes.gemini import IMAGE_SAFETY_MARKER, GeminiEmulator
from tests.fakes.provider import png_bytes
from tests.fakes.runbase import RunbaseEmulator
from tests.fakes.runflow import RunflowEmulator
from tests.fakes.runware import SAFETY_BLOCK_MARKER, RunwareEmulator

KEY = "sk-contract-canary-7f3a9c0e51"
PROVIDERS = ("runware", "runflow", "runbase", "gemini")
LINK_ONLY = ("runflow", "runbase")
Stage = Literal["create", "result"]
FILLER = "x9" * 2500
"""Padding in malformed bodies: an error may quote a short excerpt of a body, never this."""


@dataclass
class Contract:
    """One provider and its emulator, seen through the same hooks.

    Attributes:
        name: the provider's ``name``.
        emulator: the started emulator (for provider-specific peeking only).
        http: the shared httpx client the providers use.
        make: a provider aimed at the emulator; keyword overrides (``api_key``,
            ``deadline``) replace the short test defaults.
        creates: requests that asked the emulator to start paid work (any answer).
        requests: every API request the emulator received.
        paid: paid units the emulator created (tasks, runs; Gemini: images made).
        fail_create: the next create answers HTTP ``status``, with ``Retry-After`` (or
            Google's ``RetryInfo``) of the given seconds when not None.
        no_credit: creates answer the provider's "out of credit" error from now on.
        slow: tasks never finish (until :attr:`release`); Gemini: the next call hangs.
        release: end slow mode: existing tasks finish at their next poll, new ones at once.
        working: the provider is polling (or, for Gemini, its call is in flight).
        malformed: the answer at ``stage`` is HTTP 200 with the given raw body.
        missing_fields: per stage, a JSON body in the provider's shape that lacks what a
            reader needs (a run without an id, a success without an image, ...).
        inline_sent: reference images sent inline in the last create, decoded.
        links_sent: reference images sent as links in the last create.
        reference_link: a link the emulator serves a ``w`` x ``h`` PNG at (link-only).
        price_micros: what the emulator bills per image of the success test, when the
            provider reports cost.
        safety_prompt: a prompt the emulator's safety filter blocks.
        auth_status, quota_status: the HTTP status of a wrong key and of "no credit".
        retries_5xx_on_create: whether a 5xx on create is retried; ``why_not`` cites the
            document when it is not.
        call_per_image: each image is its own create (Gemini: one ``generateContent`` per
            image, ``candidateCount > 1`` being unconfirmed, provider-apis.md §6.4).
    """

    name: str
    emulator: Any
    http: httpx.AsyncClient
    make: Callable[..., Provider]
    creates: Callable[[], int]
    requests: Callable[[], int]
    paid: Callable[[], int]
    fail_create: Callable[[int, float | None], None]
    no_credit: Callable[[], None]
    slow: Callable[[], None]
    release: Callable[[], None]
    working: Callable[[], bool]
    malformed: Callable[[Stage, str], None]
    missing_fields: Mapping[Stage, str]
    inline_sent: Callable[[], list[bytes]]
    links_sent: Callable[[], list[str]]
    reference_link: Callable[[int, int], str] | None
    price_micros: int | None
    safety_prompt: str
    auth_status: int = 401
    quota_status: int = 402
    retries_5xx_on_create: bool = True
    why_not: str = ""
    call_per_image: bool = False


# -- the four adapters -------------------------------------------------------------------------


def _b64(text: str) -> bytes:
    text = text.split(",", 1)[1] if text.startswith("data:") else text
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


async def _runware(stack: contextlib.AsyncExitStack, http: httpx.AsyncClient) -> Contract:
    emu = await stack.enter_async_context(RunwareEmulator(api_key=KEY))

    def make(**kw: Any) -> Provider:
        options: dict[str, Any] = {"api_key": KEY, "api_url": emu.base_url, "client": http}
        options |= {"poll_initial": 0.01, "poll_max": 0.05, "deadline": 10.0}
        return RunwareProvider(**(options | {"retry_timeout": 10.0} | kw))

    def create_tasks() -> list[dict[str, Any]]:
        posts = [r.body for r in emu.requests if r.method == "POST" and isinstance(r.body, list)]
        return [t for body in posts for t in body if t.get("taskType") == "imageInference"]

    def refs() -> list[str]:
        tasks = create_tasks()
        return list(tasks[-1].get("inputs", {}).get("referenceImages", [])) if tasks else []

    def slow() -> None:
        emu.processing_delay = 60.0

    def release() -> None:
        emu.processing_delay = 0.0
        emu.release_all()

    def no_credit() -> None:
        emu.insufficient_credits = True

    def malformed(stage: Stage, body: str) -> None:
        emu.malformed_next(body, task_type="imageInference" if stage == "create" else "getResponse")

    item = {"taskType": "imageInference", "note": FILLER}
    return Contract(
        name="runware",
        emulator=emu,
        http=http,
        make=make,
        creates=lambda: len(create_tasks()),
        requests=lambda: len(emu.requests),
        paid=lambda: len(emu.charges),
        fail_create=lambda status, wait: emu.fail_next(
            status, retry_after=wait, task_type="imageInference"
        ),
        no_credit=no_credit,
        slow=slow,
        release=release,
        working=lambda: bool(emu.polls),
        malformed=malformed,
        missing_fields={
            # An acknowledgement without the taskUUID, then polls of a task never created.
            "create": json.dumps({"data": [item]}),
            # §1.5: a "success" item carries imageURL/imageBase64Data/imageDataURI.
            "result": json.dumps({"data": [{**item, "status": "success"}]}),
        },
        inline_sent=lambda: [_b64(r) for r in refs() if r.startswith("data:")],
        links_sent=lambda: [r for r in refs() if r.startswith(("http://", "https://"))],
        reference_link=None,
        price_micros=68_950,  # seeds/001: Nano Banana 2 at 1K
        safety_prompt=f"a {SAFETY_BLOCK_MARKER} prompt",
    )


async def _run_api(
    stack: contextlib.AsyncExitStack, http: httpx.AsyncClient, name: Literal["runflow", "runbase"]
) -> Contract:
    emu: RunflowEmulator | RunbaseEmulator
    if name == "runflow":
        emu = await stack.enter_async_context(RunflowEmulator(api_key=KEY))
    else:
        emu = await stack.enter_async_context(RunbaseEmulator(api_key=KEY))

    def make(**kw: Any) -> Provider:
        options: dict[str, Any] = {"api_key": KEY, "api_url": emu.base_url, "client": http}
        options |= {"poll_initial": 0.01, "poll_max": 0.05, "deadline": 10.0}
        options |= {"retry_timeout": 10.0} | kw
        if name == "runflow":
            return RunflowProvider(**options)
        return RunbaseProvider(limiter=AsyncLimiter(1000, 1), **options)

    def created() -> list[dict[str, Any]]:
        return [r.body for r in emu.requests if r.method == "POST" and isinstance(r.body, dict)]

    def links() -> list[str]:
        bodies = created()
        return list(bodies[-1].get("input", {}).get("image_urls", [])) if bodies else []

    def slow() -> None:
        emu.processing_delay = 60.0

    def release() -> None:
        emu.processing_delay = 0.0
        emu.release_all()

    def no_credit() -> None:
        if isinstance(emu, RunflowEmulator):
            emu.insufficient_credit = True  # 402 INSUFFICIENT_CREDIT (§2.6)
        else:
            emu.insufficient_balance = True  # 402 insufficient_balance (§3.4)

    def malformed(stage: Stage, body: str) -> None:
        emu.fail_next("malformed", on="create" if stage == "create" else "poll", body=body)

    state = "status_code" if name == "runflow" else "status"
    return Contract(
        name=name,
        emulator=emu,
        http=http,
        make=make,
        creates=lambda: sum(1 for r in emu.requests if r.method == "POST"),
        requests=lambda: len(emu.requests),
        paid=lambda: len(emu.charges),
        fail_create=lambda status, wait: emu.fail_next(status, retry_after=wait, on="create"),
        no_credit=no_credit,
        slow=slow,
        release=release,
        working=lambda: bool(emu.polls),
        malformed=malformed,
        missing_fields={
            "create": json.dumps({state: "queued", "note": FILLER}),  # a run without its id
            "result": json.dumps({"id": "run_1", state: "succeeded", "output": {"note": FILLER}}),
        },
        inline_sent=lambda: [],  # neither API has a field for image bytes (§2.2, §3.2)
        links_sent=links,
        reference_link=emu.reference_url,
        price_micros=80_000 if name == "runflow" else None,  # §2.7: NB2 $0.08 per image
        safety_prompt=f"a {SAFETY_BLOCK_MARKER} prompt",
    )


async def _gemini(stack: contextlib.AsyncExitStack, http: httpx.AsyncClient) -> Contract:
    emu = await stack.enter_async_context(GeminiEmulator(api_key=KEY))

    def make(**kw: Any) -> Provider:
        options: dict[str, Any] = {"api_key": KEY, "base_url": emu.base_url, "timeout": 10.0}
        provider = GeminiProvider(**(options | {"deadline": 10.0, "retry_wait_initial": 0.01} | kw))
        stack.push_async_callback(provider.aclose)
        return provider

    def parts() -> list[dict[str, Any]]:
        sent = emu.generate_requests()
        if not sent or not isinstance(sent[-1].body, dict):
            return []
        return [p for turn in sent[-1].body.get("contents", []) for p in turn.get("parts", [])]

    def inline() -> list[bytes]:
        blobs = [p.get("inlineData") or p.get("inline_data") for p in parts()]
        return [_b64(b["data"]) for b in blobs if b]

    def links() -> list[str]:
        files = [p.get("fileData") or p.get("file_data") for p in parts()]
        return [f.get("fileUri") or f.get("file_uri") for f in files if f]

    def no_credit() -> None:
        emu.billing_disabled = True

    empty_image = {"inlineData": {"mimeType": "image/png"}, "note": FILLER}  # no "data"
    candidate = {"content": {"role": "model", "parts": [empty_image]}, "finishReason": "STOP"}
    return Contract(
        name="gemini",
        emulator=emu,
        http=http,
        make=make,
        creates=lambda: len(emu.generate_requests()),
        requests=lambda: len(emu.requests),
        paid=lambda: emu.images_made,
        fail_create=lambda status, wait: emu.fail_next(status, retry_delay=wait),
        no_credit=no_credit,
        slow=lambda: emu.hang_next(60.0),
        release=lambda: None,
        working=lambda: emu.calls > 0,
        malformed=lambda stage, body: emu.malformed_next(body),
        # generateContent answers with the image itself: there is no separate result stage.
        missing_fields={"create": json.dumps({"candidates": [candidate]})},
        inline_sent=inline,
        links_sent=links,
        reference_link=None,
        price_micros=None,
        safety_prompt=f"a {IMAGE_SAFETY_MARKER} prompt",
        # provider-apis.md §4.7: a wrong key is 400 INVALID_ARGUMENT / API_KEY_INVALID; the
        # Gemini API has no 402: billing not enabled is 400 FAILED_PRECONDITION.
        auth_status=400,
        quota_status=400,
        retries_5xx_on_create=False,
        call_per_image=True,
        why_not=(
            "reliability-security-perf.md §4.1: a 5xx on a paid, non-idempotent submit "
            "(Gemini generateContent) has an unknown outcome; never retried blindly"
        ),
    )


BUILDERS = {
    "runware": _runware,
    "runflow": lambda stack, http: _run_api(stack, http, "runflow"),
    "runbase": lambda stack, http: _run_api(stack, http, "runbase"),
    "gemini": _gemini,
}


@pytest.fixture(params=PROVIDERS)
async def contract(request: pytest.FixtureRequest) -> AsyncIterator[Contract]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=5.0))
        yield await BUILDERS[request.param](stack, http)


@pytest.fixture
def retries() -> Iterator[list[RetryDetails]]:
    """Every retry stamina schedules during the test (wait and cause), in order."""
    seen: list[RetryDetails] = []
    saved = get_on_retry_hooks()
    set_on_retry_hooks([seen.append])
    try:
        yield seen
    finally:
        set_on_retry_hooks(saved)


# -- helpers ---------------------------------------------------------------------------------


class TaskIds:
    """The ``on_task_id`` callback: keeps every id stored."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, task_id: str) -> None:
        self.ids.append(task_id)


def job(
    prompt: str = "a lighthouse at dusk", refs: tuple[ReferenceData, ...] = (), **fields: Any
) -> GenerationTask:
    stored = tuple(
        ReferenceImage(
            media_key=f"{i:064x}.png", mime_type=r.mime_type, width=r.width, height=r.height
        )
        for i, r in enumerate(refs)
    )
    request = ImageRequest.model_validate({"prompt": prompt, "references": stored, **fields})
    return GenerationTask("job-contract", request, validate(default_catalog(), request), refs)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes the pixels, not only the header
        return image.size


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def assert_fit_for_people(error: ProviderError, name: str, secrets: tuple[str, ...]) -> None:
    """One short line naming the provider: no traceback, no key, no raw body."""
    text = str(error)
    assert text == error.message
    assert name in text.lower(), text
    assert "\n" not in text and "Traceback" not in text and 'File "' not in text
    assert len(text) <= 300, text
    for secret in secrets:
        assert secret not in text and secret not in render_error(error)


def failover_may_resubmit(error: BaseException) -> bool:
    """The worker hands a job to the next provider only for this (bot/worker.py)."""
    return isinstance(error, ProviderUnavailable) and not error.sent


# -- 1. success ------------------------------------------------------------------------------


async def test_success_gives_n_decodable_images_and_the_cost_where_reported(
    contract: Contract,
) -> None:
    provider = contract.make()
    n = min(2, provider.capabilities.max_results or 2)
    ids = TaskIds()
    result = await provider.generate(
        job(aspect_ratio="3:2", resolution="1K", number_results=n), ids
    )
    assert len(ids.ids) == 1, "one task id per generation"
    assert contract.creates() == (n if contract.call_per_image else 1)
    assert [size_of(image.data) for image in result.images] == [(1264, 848)] * n
    if provider.capabilities.reports_cost:
        assert contract.price_micros is not None
        assert result.cost_micros == n * contract.price_micros
    else:
        assert result.cost_micros is None, "no cost reported: the core settles at its estimate"


# -- 2. references ---------------------------------------------------------------------------


def two_references(contract: Contract, *, links: bool) -> tuple[ReferenceData, ...]:
    sizes = ((64, 32), (32, 32))
    return tuple(
        ReferenceData(
            png_bytes(w, h),
            "image/png",
            w,
            h,
            url=contract.reference_link(w, h) if links and contract.reference_link else None,
        )
        for w, h in sizes
    )


async def test_references_arrive_inline_or_as_links_as_the_provider_takes_them(
    contract: Contract,
) -> None:
    provider = contract.make()
    inline = provider.capabilities.inline_references
    refs = two_references(contract, links=not inline)
    result = await provider.generate(job(refs=refs, resolution="1K"), TaskIds())
    assert len(result.images) == 1
    if inline:
        assert contract.inline_sent() == [r.data for r in refs], "the bytes, in order"
        assert contract.links_sent() == []
    else:
        assert contract.links_sent() == [r.url for r in refs], "image_urls, in order"
        assert contract.inline_sent() == []


@pytest.mark.parametrize("contract", LINK_ONLY, indirect=True)
async def test_a_link_only_provider_refuses_a_reference_without_a_link_before_sending(
    contract: Contract,
) -> None:
    provider = contract.make()
    assert provider.capabilities.inline_references is False
    refs = two_references(contract, links=True)
    refs = (refs[0], ReferenceData(refs[1].data, "image/png", 32, 32, url=None))
    ids = TaskIds()
    with pytest.raises(BananabotError) as refused:
        await provider.generate(job(refs=refs, resolution="1K"), ids)
    assert isinstance(refused.value, ProviderRejected | ReferenceImageError)
    assert not refused.value.retryable
    assert contract.requests() == 0 and ids.ids == [], "nothing sent, nothing stored"


# -- 3. a wrong key and no credit: final, typed, fit for people --------------------------------


async def test_a_wrong_key_is_an_auth_error_sent_once(contract: Contract) -> None:
    wrong = "sk-wrong-canary-0d1e2f3a4b"
    with pytest.raises(ProviderAuthError) as caught:
        await contract.make(api_key=wrong).generate(job(), TaskIds())
    assert caught.value.status == contract.auth_status
    assert not caught.value.retryable and contract.creates() == 1
    assert_fit_for_people(caught.value, contract.name, (wrong, KEY))
    assert "API key" in render_error(caught.value)


async def test_no_credit_is_a_quota_error_sent_once(contract: Contract) -> None:
    contract.no_credit()
    with pytest.raises(ProviderQuotaError) as caught:
        await contract.make().generate(job(), TaskIds())
    assert caught.value.status == contract.quota_status
    assert not caught.value.retryable and contract.creates() == 1
    assert contract.paid() == 0
    assert_fit_for_people(caught.value, contract.name, (KEY,))
    assert "out of credit" in render_error(caught.value)


# -- 4. rate limits and server errors on create ----------------------------------------------


async def test_a_rate_limit_on_create_is_retried_after_the_wait_it_names(
    contract: Contract, retries: list[RetryDetails]
) -> None:
    contract.fail_create(429, 1.0)
    result = await contract.make().generate(job(), TaskIds())
    assert len(result.images) == 1
    assert contract.creates() == 2 and contract.paid() == 1
    assert len(retries) == 1
    cause = retries[0].caused_by
    assert isinstance(cause, ProviderRateLimited) and cause.retry_after == 1.0
    assert retries[0].wait_for == 1.0, "the provider's wait replaced the computed backoff"


async def test_a_server_error_on_create_is_retried_unless_the_outcome_is_unknown(
    contract: Contract, retries: list[RetryDetails]
) -> None:
    contract.fail_create(503, None)
    provider = contract.make()
    if contract.retries_5xx_on_create:
        result = await provider.generate(job(), TaskIds())
        assert len(result.images) == 1
        assert contract.creates() == 2 and contract.paid() == 1
        assert [type(r.caused_by) for r in retries] == [ProviderUnavailable]
        return
    assert contract.why_not
    with pytest.raises(ProviderUnavailable) as caught:
        await provider.generate(job(), TaskIds())
    assert caught.value.status == 503 and caught.value.sent is True
    assert contract.creates() == 1 and retries == []
    assert not failover_may_resubmit(caught.value)


# -- 5. a task that never finishes ---------------------------------------------------------------


async def test_a_task_that_never_finishes_times_out_as_sent(contract: Contract) -> None:
    contract.slow()
    provider = contract.make(deadline=0.5)
    async with asyncio.timeout(10):  # a hang guard, not a speed claim
        with pytest.raises(ProviderTimeout) as caught:
            await provider.generate(job(), TaskIds())
    assert caught.value.provider == contract.name and not caught.value.retryable
    assert not failover_may_resubmit(caught.value), "the task was sent: never resubmitted"
    assert contract.creates() == 1


# -- 6. safety blocks ------------------------------------------------------------------------


async def test_a_safety_block_is_typed_and_not_retried(contract: Contract) -> None:
    with pytest.raises(SafetyBlocked) as caught:
        await contract.make().generate(job(contract.safety_prompt), TaskIds())
    assert caught.value.provider == contract.name and not caught.value.retryable
    assert contract.creates() == 1


async def test_a_safety_block_through_the_worker_fails_the_job_and_refunds_it(
    contract: Contract, tmp_path: Path
) -> None:
    async with SqliteStore(tmp_path / "contract.db") as store:
        service, worker, router = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=FileMediaStore(tmp_path / "media"),
            providers={contract.name: contract.make()},
            routing=[contract.name],
            reference_client=contract.http,
            default_policy=ChannelPolicy(),
            concurrency=1,
            idle_poll=0.05,
        )
        recorder = Recorder()
        router.register("test", recorder)
        running = asyncio.create_task(worker.run())
        try:
            submitted = await service.submit(
                ImageRequest(prompt=contract.safety_prompt), origin(), idempotency_key="safety"
            )
            failed = await recorder.wait_for(submitted.job.id, "failed")
            stored = await store.get_job(submitted.job.id)
            totals = await store.ledger_totals()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert submitted.job.provider == contract.name
    assert stored.status is JobStatus.FAILED and stored.error_code == "safety_blocked"
    assert isinstance(failed, Failed) and failed.error_code == "safety_blocked"
    assert failed.refunded_micros == submitted.job.estimate_micros
    estimate = submitted.job.estimate_micros
    assert estimate > 0
    assert totals == {"reserve": estimate, "release": -estimate}, "refunded, nothing charged"
    assert contract.creates() == 1


# -- 7. malformed answers --------------------------------------------------------------------

MALFORMED_CASES = [
    (name, stage)
    for name in PROVIDERS
    for stage in (("create",) if name == "gemini" else ("create", "result"))
]


@pytest.mark.parametrize("kind", ["invalid_json", "missing_fields"])
@pytest.mark.parametrize(("contract", "stage"), MALFORMED_CASES, indirect=["contract"])
async def test_a_malformed_answer_is_a_protocol_error_without_the_body(
    contract: Contract, stage: Stage, kind: str
) -> None:
    body = '{"note": "' + FILLER if kind == "invalid_json" else contract.missing_fields[stage]
    contract.malformed(stage, body)
    with pytest.raises(ProviderProtocolError) as caught:
        await contract.make().generate(job(), TaskIds())
    assert caught.value.provider == contract.name and not caught.value.retryable
    assert len(caught.value.message) <= 300
    for link in chain(caught.value):
        assert FILLER[:200] not in str(link), f"{type(link).__name__} quotes the raw body"
    assert contract.creates() == 1


# -- 8. cancellation ---------------------------------------------------------------------------


async def test_cancelling_mid_flight_stops_at_once_and_sends_nothing_more(
    contract: Contract,
) -> None:
    contract.slow()
    provider = contract.make()
    before = asyncio.all_tasks()
    running = asyncio.create_task(provider.generate(job(), TaskIds()))
    async with asyncio.timeout(5):
        while not contract.working():
            await asyncio.sleep(0.01)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=5)  # a hang guard, not a speed claim
    assert running in done and running.cancelled(), "the cancellation propagates"
    seen = contract.requests()
    await asyncio.sleep(0.3)  # several poll intervals (poll_max is 0.05 s)
    assert contract.requests() == seen, "no request after the cancellation"
    stray = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and t is not asyncio.current_task()
        if "aiohttp" not in getattr(getattr(t.get_coro(), "cr_code", None), "co_filename", "")
    ]
    assert stray == [], "only the emulator's own server tasks may remain"
    contract.release()
    assert len((await provider.generate(job(), TaskIds())).images) == 1, "still usable"


# -- 9. resuming what was interrupted ----------------------------------------------------------


async def test_an_interrupted_generation_resumes_without_paying_twice(contract: Contract) -> None:
    contract.slow()
    provider = contract.make()
    ids = TaskIds()
    running = asyncio.create_task(provider.generate(job(), ids))
    async with asyncio.timeout(5):
        while not contract.working():
            await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.wait({running}, timeout=5)
    assert running.cancelled() and len(ids.ids) == 1
    contract.release()
    restarted = contract.make()
    if restarted.capabilities.resumable:
        result = await restarted.resume(job(), ids.ids[0])
        assert len(result.images) == 1
        assert contract.creates() == 1 and contract.paid() == 1, "the same task, paid once"
        return
    # Nothing to look up (Gemini generateContent): the worker must refund, not resend.
    with pytest.raises(ProviderUnavailable) as caught:
        await restarted.resume(job(), ids.ids[0])
    assert not failover_may_resubmit(caught.value)
    assert contract.creates() == 1, "the interrupted call is not sent again"
