"""The Runflow provider against the local Runflow emulator (real HTTP on loopback).

What every provider must do (references, auth, quota, 429/5xx retries, deadline, safety,
malformed answers, cancellation, resume) is in tests/test_provider_contract.py; here is what
is Runflow's own: run input translation, the ``/edit`` models, local refusals, 422 details,
poll-side faults, failure codes, callback signatures and the emulator's own rules.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.catalog import ResolvedSize, default_catalog, validate
from bot.errors import (
    ProviderAuthError,
    ProviderProtocolError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    SafetyBlocked,
)
from bot.interfaces import GenerationTask, ReferenceData
from bot.models import ImageRequest, ReferenceImage
from bot.providers.runflow import RunflowProvider, verify_signature
from bot.providers.runflow.translate import error_from_run, error_from_status
from bot.providers.runflow.wire import ErrorBody, Run
from tests.fakes.provider import png_bytes
from tests.fakes.runflow import NSFW_MARKER, RunflowEmulator

CATALOG = default_catalog()


@pytest.fixture
async def emulator() -> AsyncIterator[RunflowEmulator]:
    async with RunflowEmulator(api_key="test-key") as emu:
        yield emu


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def provider(emu: RunflowEmulator, http: httpx.AsyncClient, **kw: object) -> RunflowProvider:
    options: dict[str, object] = {
        "api_key": "test-key",
        "api_url": emu.base_url,
        "client": http,
        "poll_initial": 0.01,
        "poll_max": 0.05,
        "deadline": 10.0,
        "retry_timeout": 10.0,
    }
    options.update(kw)
    return RunflowProvider(**options)  # type: ignore[arg-type]


def task(
    prompt: str = "a lighthouse at dusk", refs: tuple[str | None, ...] = (), **fields: object
) -> GenerationTask:
    references = tuple(
        ReferenceImage(media_key=f"{i:064x}.png", mime_type="image/png", width=64, height=32)
        for i in range(len(refs))
    )
    request = ImageRequest.model_validate({"prompt": prompt, "references": references, **fields})
    data = tuple(ReferenceData(png_bytes(64, 32), "image/png", 64, 32, url=u) for u in refs)
    return GenerationTask("job1", request, validate(CATALOG, request), data)


class TaskIds:
    """Records run ids and how many runs the emulator had when each id was stored."""

    def __init__(self, emu: RunflowEmulator) -> None:
        self.emu = emu
        self.ids: list[str] = []
        self.runs_at_store: list[int] = []

    async def __call__(self, task_id: str) -> None:
        self.ids.append(task_id)
        self.runs_at_store.append(len(self.emu.runs))


def creates(emu: RunflowEmulator) -> list[str]:
    return [r.path for r in emu.requests if r.method == "POST"]


# -- success ----------------------------------------------------------------------------------


async def test_generates_n_real_images_at_the_requested_size_and_reports_cost(
    emulator: RunflowEmulator, client: httpx.AsyncClient
) -> None:
    emulator.processing_polls = 3
    ids = TaskIds(emulator)
    request = task(aspect_ratio="3:2", resolution="1K", number_results=2, seed=42)
    result = await provider(emulator, client).generate(request, ids)
    assert ids.runs_at_store == [1], "the run id is stored right after create, before polling"
    assert emulator.polls[ids.ids[0]] == 4, "polled while queued and running"
    assert list(emulator.runs) == ids.ids
    assert creates(emulator) == ["/v1/models/google/nano-banana-2/runs"]
    body = emulator.runs[ids.ids[0]]
    assert body["metadata"] == {"job": "job1"}
    assert body["input"] == {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "3:2",
        "resolution": "1K",
        "num_images": 2,
        "seed": 42,
        "safety_tolerance": "5",  # unset = bananabot's default "none" (bot.policy)
    }
    assert [Image.open(io.BytesIO(i.data)).size for i in result.images] == [(1264, 848)] * 2
    assert result.cost_micros == 2 * 80_000
    assert all(i.seed == 42 and not i.nsfw for i in result.images)
    assert emulator.downloads == [None, None], "output links get no API key"
    assert all(r.headers["Authorization"] == "Bearer test-key" for r in emulator.requests)


async def test_options_map_to_runflow_fields(
    emulator: RunflowEmulator, client: httpx.AsyncClient
) -> None:
    ids = TaskIds(emulator)
    options: dict[str, Any] = {"output_format": "WEBP", "web_search": True}
    request = task(f"a {NSFW_MARKER} skyline", safety_tolerance="low", **options)
    result = await provider(emulator, client).generate(request, ids)
    data = emulator.runs[ids.ids[0]]["input"]
    assert creates(emulator) == ["/v1/models/google/nano-banana-2/runs"]
    expected = {"output_format": "webp", "enable_web_search": True, "safety_tolerance": "2"}
    assert {key: data[key] for key in expected} == expected
    assert Image.open(io.BytesIO(result.images[0].data)).format == "WEBP"
    assert result.cost_micros == 95_000, "$0.08 + $0.015 web search (emulator prices)"
    assert result.images[0].nsfw is True, "nsfw_detected is kept"


@pytest.mark.parametrize("model", ["nano-banana-pro", "nano-banana-2"])
async def test_references_are_sent_as_links_to_the_edit_model(
    emulator: RunflowEmulator, client: httpx.AsyncClient, model: str
) -> None:
    ids = TaskIds(emulator)
    links = (emulator.reference_url(), emulator.reference_url(32, 32))
    await provider(emulator, client).generate(task(refs=links, model=model), ids)
    assert creates(emulator) == [f"/v1/models/google/{model}/edit/runs"]
    data = emulator.runs[ids.ids[0]]["input"]
    assert data["image_urls"] == list(links)
    assert "aspect_ratio" not in data, "without a ratio the model follows the reference"


@pytest.mark.parametrize(
    ("fields", "size", "parameter"),
    [
        ({"model": "nano-banana-pro"}, ResolvedSize("0.5K", "1:1", 512, 512), "resolution"),
        ({"output_quality": 80}, None, "output_quality"),
        ({"temperature": 0.5}, None, "temperature"),
        ({"image_search": True}, None, "image_search"),
    ],
)
async def test_what_runflow_does_not_take_is_refused_locally(
    emulator: RunflowEmulator,
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


async def test_a_body_runflow_rejects_is_not_retried_and_names_the_field(
    emulator: RunflowEmulator, client: httpx.AsyncClient
) -> None:
    # Nano Banana 2's thinking_level sent to the Pro model: Runflow answers 422.
    misrouted = provider(emulator, client, model_paths={"nano-banana-2": "google/nano-banana-pro"})
    with pytest.raises(ProviderRejected) as rejected:
        await misrouted.generate(task(thinking="HIGH"), TaskIds(emulator))
    assert (rejected.value.status, rejected.value.parameter) == (422, "input.thinking_level")
    assert len(emulator.requests) == 1 and emulator.charges == []


async def test_server_errors_drops_and_hangs_are_retried_without_a_second_run(
    emulator: RunflowEmulator,
) -> None:
    emulator.fail_next(503, on="create")
    emulator.fail_next(500, count=2, on="poll")
    emulator.fail_next("drop", on="poll")
    emulator.fail_next("hang", seconds=30.0, on="poll")
    async with httpx.AsyncClient(timeout=0.5) as quick:
        result = await provider(emulator, quick).generate(task(), TaskIds(emulator))
    assert len(result.images) == 1 and len(emulator.charges) == 1


async def test_persistent_server_errors_give_up_as_unavailable(
    emulator: RunflowEmulator, client: httpx.AsyncClient
) -> None:
    emulator.fail_next(500, count=10)
    with pytest.raises(ProviderUnavailable):
        await provider(emulator, client, attempts=3).generate(task(), TaskIds(emulator))
    assert len(emulator.requests) == 3 and emulator.charges == []


async def test_a_refused_connection_is_unavailable_and_not_sent(
    client: httpx.AsyncClient,
) -> None:
    async with RunflowEmulator() as gone:
        url = gone.base_url
    closed = RunflowProvider(api_key="k", api_url=url, client=client, attempts=2)
    with pytest.raises(ProviderUnavailable) as failed:
        await closed.generate(task(), TaskIds(gone))
    assert failed.value.sent is False


# -- resume ----------------------------------------------------------------------------------


async def test_resume_never_creates_a_run(
    emulator: RunflowEmulator, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ProviderProtocolError, match="no run"):
        await provider(emulator, client).resume(task(), "01J0-not-a-run")
    assert creates(emulator) == [] and emulator.runs == {}


# -- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "UNAUTHORIZED", ProviderAuthError),
        (403, "EMAIL_NOT_VERIFIED", ProviderAuthError),
        (402, "INSUFFICIENT_CREDIT", ProviderQuotaError),
        (400, "BAD_REQUEST", ProviderRejected),
        (422, "VALIDATION_ERROR", ProviderRejected),
        (429, "RATE_LIMITED", ProviderRateLimited),
        (503, "SERVICE_UNAVAILABLE", ProviderUnavailable),
    ],
)
def test_http_errors_map_by_status(status: int, code: str, expected: type[Exception]) -> None:
    error = error_from_status(status, ErrorBody(code=code, message="m"), 2.0)
    assert type(error) is expected and error.status == status
    assert getattr(error, "retry_after", 2.0) == 2.0


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"status_code": "failed", "failure_code": "NSFW_CONTENT"}, SafetyBlocked),
        ({"status_code": "failed", "output": {"nsfw_detected": True}}, SafetyBlocked),
        ({"status_code": "failed", "failure_code": "INPUT_VALIDATION_FAILED"}, ProviderRejected),
        ({"status_code": "canceled"}, ProviderUnavailable),
        ({"status": "errored", "failure_code": "PROVIDER_ERROR"}, ProviderUnavailable),
    ],
)
def test_failed_runs_map_by_failure_code(run: dict[str, object], expected: type[Exception]) -> None:
    assert type(error_from_run(Run.model_validate({"id": "r", **run}))) is expected


def test_callback_signatures_are_verified_over_the_raw_body() -> None:
    raw = b'{"event":"run.completed","run_id":"01J0"}'
    good = "810ac4fb76c8121480639fc8483a02f51876d051e13aa4879d233b224c346b9e"
    assert verify_signature("whsec_test", raw, good)
    assert verify_signature("whsec_test", raw, good.upper())
    assert not verify_signature("whsec_other", raw, good)
    assert not verify_signature("whsec_test", raw + b" ", good)
    assert not verify_signature("whsec_test", raw, "sha256=" + good)
    assert not verify_signature("whsec_test", raw, None)
    assert not verify_signature("", raw, good)


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        ("nano-banana-pro", {"prompt": "a cat", "width": 5}, "width"),
        ("nano-banana-pro", {"prompt": "a cat", "resolution": "0.5K"}, "resolution"),
        ("nano-banana-2", {"prompt": "a cat", "aspect_ratio": "7:3"}, "aspect_ratio"),
        ("nano-banana-2", {"prompt": "a cat", "safety_tolerance": 2}, "safety_tolerance"),
        ("nano-banana-2", {"aspect_ratio": "1:1"}, "prompt"),
        ("nano-banana-2", {"prompt": "a cat", "image_urls": ["https://x/a.png"]}, "image_urls"),
        ("nano-banana-2/edit", {"prompt": "a cat"}, "image_urls"),
    ],
)
async def test_the_emulator_rejects_what_runflow_rejects(
    emulator: RunflowEmulator,
    client: httpx.AsyncClient,
    model: str,
    data: dict[str, object],
    field: str,
) -> None:
    response = await client.post(
        f"{emulator.base_url}/models/google/{model}/runs",
        json={"input": data},
        headers={"Authorization": "Bearer test-key"},
    )
    assert response.status_code == 422
    assert f"input.{field}" in [e["field"] for e in response.json()["errors"]]
    assert emulator.runs == {}
