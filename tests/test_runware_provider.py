"""The Runware provider against the local Runware emulator (real HTTP on loopback).

What every provider must do (auth, quota, 429/5xx retries, deadline, safety, malformed
answers, cancellation, resume) is in tests/test_provider_contract.py; here is what is
Runware's own: task translation, taskUUID stored before submit, conflictTaskUUID, NSFW flag.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from bot.catalog import ResolvedSize, default_catalog, validate
from bot.errors import (
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from bot.interfaces import GenerationTask, ReferenceData
from bot.models import ImageRequest, ReferenceImage
from bot.providers.runware.client import RunwareProvider
from tests.fakes.provider import png_bytes
from tests.fakes.runware import NSFW_MARKER, RunwareEmulator

CATALOG = default_catalog()


@pytest.fixture
async def emulator() -> AsyncIterator[RunwareEmulator]:
    async with RunwareEmulator(api_key="test-key") as emu:
        yield emu


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def provider(emu: RunwareEmulator, http: httpx.AsyncClient, **kw: object) -> RunwareProvider:
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
    return RunwareProvider(**options)  # type: ignore[arg-type]


def task(prompt: str = "a lighthouse at dusk", refs: int = 0, **fields: object) -> GenerationTask:
    references = tuple(
        ReferenceImage(media_key=f"{i:064x}.png", mime_type="image/png", width=64, height=32)
        for i in range(refs)
    )
    request = ImageRequest.model_validate({"prompt": prompt, "references": references, **fields})
    data = tuple(ReferenceData(png_bytes(64, 32), "image/png", 64, 32) for _ in range(refs))
    return GenerationTask("job1", request, validate(CATALOG, request), data)


class TaskIds:
    """Records task ids and what the emulator had seen when each was stored."""

    def __init__(self, emu: RunwareEmulator) -> None:
        self.emu = emu
        self.ids: list[str] = []
        self.tasks_seen_at_store: list[int] = []

    async def __call__(self, task_id: str) -> None:
        self.ids.append(task_id)
        self.tasks_seen_at_store.append(len(self.emu.tasks))


async def test_generates_real_images_and_reports_the_provider_cost(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    ids = TaskIds(emulator)
    result = await provider(emulator, client).generate(
        task(aspect_ratio="3:2", resolution="1K", number_results=2, seed=42), ids
    )
    assert ids.tasks_seen_at_store == [0], "the task id is stored before Runware sees the task"
    assert list(emulator.tasks) == ids.ids
    body = emulator.tasks[ids.ids[0]]
    assert (body["width"], body["height"], body["numberResults"]) == (1264, 848, 2)
    assert body["deliveryMethod"] == "async" and body["includeCost"] is True
    assert len(result.images) == 2
    for image in result.images:
        assert Image.open(io.BytesIO(image.data)).size == (1264, 848)
    assert [i.seed for i in result.images] == [42, 43]
    assert result.cost_micros == 2 * 68_950
    assert emulator.requests[-1].headers.get("Authorization") is None  # image GET: no key
    api_calls = [r for r in emulator.requests if r.method == "POST"]
    assert all(r.headers["Authorization"] == "Bearer test-key" for r in api_calls)


async def test_references_are_sent_as_data_uris(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    ids = TaskIds(emulator)
    result = await provider(emulator, client).generate(task(refs=2, resolution="1K"), ids)
    refs = emulator.tasks[ids.ids[0]]["inputs"]["referenceImages"]
    assert len(refs) == 2 and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "width" not in emulator.tasks[ids.ids[0]]
    assert result.cost_micros == 68_950 + 2 * 280


async def test_polls_while_processing(emulator: RunwareEmulator, client: httpx.AsyncClient) -> None:
    emulator.processing_polls = 3
    ids = TaskIds(emulator)
    await provider(emulator, client).generate(task(), ids)
    assert emulator.polls[ids.ids[0]] == 4


async def test_persistent_server_errors_give_up_as_unavailable(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    emulator.fail_next(500, count=10, retry_after=0.01)
    with pytest.raises(ProviderUnavailable):
        await provider(emulator, client, attempts=3).generate(task(), TaskIds(emulator))
    assert len([r for r in emulator.requests if r.method == "POST"]) == 3
    assert emulator.charges == []


async def test_a_body_runware_rejects_is_not_retried(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    bad = task()
    bad = GenerationTask(bad.job_id, bad.request, ResolvedSize("1K", None, 1000, 1000))
    with pytest.raises(ProviderRejected):
        await provider(emulator, client).generate(bad, TaskIds(emulator))
    assert len(emulator.requests) == 1


async def test_nsfw_flag_is_kept(emulator: RunwareEmulator, client: httpx.AsyncClient) -> None:
    result = await provider(emulator, client).generate(
        task(prompt=f"x {NSFW_MARKER}"), TaskIds(emulator)
    )
    assert result.images[0].nsfw is True


async def test_a_lost_answer_is_retried_and_the_conflict_polled_not_paid_twice(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    emulator.drop_next(process_first=True, task_type="imageInference")
    ids = TaskIds(emulator)
    result = await provider(emulator, client).generate(task(), ids)
    assert len(result.images) == 1
    assert len(emulator.charges) == 1
    creates = [r for r in emulator.requests if r.body and r.body[0]["taskType"] == "imageInference"]
    assert len(creates) == 2, "the create was retried once and answered conflictTaskUUID"


async def test_resume_polls_an_existing_task_without_resubmitting(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    emulator.hang_next(5.0, process_first=True, task_type="imageInference")
    ids = TaskIds(emulator)
    with pytest.raises(ProviderTimeout):
        await provider(emulator, client, deadline=0.3).generate(task(), ids)
    assert len(emulator.charges) == 1
    result = await provider(emulator, client).resume(task(), ids.ids[0])
    assert len(result.images) == 1
    assert len(emulator.charges) == 1


async def test_resume_submits_a_task_runware_never_received(
    emulator: RunwareEmulator, client: httpx.AsyncClient
) -> None:
    task_id = "7f0b7a5e-3b7c-4c1e-9d2a-0c6a1f0e2b11"
    result = await provider(emulator, client).resume(task(), task_id)
    assert list(emulator.tasks) == [task_id]
    assert len(result.images) == 1 and len(emulator.charges) == 1
