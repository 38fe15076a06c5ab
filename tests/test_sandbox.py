"""Tests for the sandbox provider: determinism, sizes, task ids, references, formats."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from io import BytesIO

import pytest
from PIL import Image, ImageChops

from bot.catalog import default_catalog, validate
from bot.interfaces import GenerationTask, ReferenceData
from bot.models import ImageRequest, ReferenceImage
from bot.providers.sandbox import SandboxProvider
from bot.providers.sandbox.provider import SANDBOX_NOTICE, base_seed, output_size


def task_for(request: ImageRequest, references: tuple[ReferenceData, ...] = ()) -> GenerationTask:
    size = validate(default_catalog(), request)
    return GenerationTask(job_id="job-1", request=request, size=size, references=references)


def reference(
    color: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (300, 200)
) -> ReferenceData:
    buffer = BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return ReferenceData(buffer.getvalue(), "image/png", *size)


def opened(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


class TaskIds:
    """An on_task_id callback that records what it was given."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, task_id: str) -> None:
        self.ids.append(task_id)


async def generate(task: GenerationTask, provider: SandboxProvider | None = None) -> list[bytes]:
    result = await (provider or SandboxProvider()).generate(task, TaskIds())
    return [image.data for image in result.images]


async def test_same_seed_and_prompt_give_identical_bytes() -> None:
    request = ImageRequest(prompt="a banana on a desk", seed=42, aspect_ratio="16:9")
    first = await generate(task_for(request))
    second = await generate(task_for(request))
    assert first == second


async def test_different_seeds_or_prompts_give_different_images() -> None:
    base = await generate(task_for(ImageRequest(prompt="a banana on a desk", seed=1)))
    other_seed = await generate(task_for(ImageRequest(prompt="a banana on a desk", seed=2)))
    other_prompt = await generate(task_for(ImageRequest(prompt="a lemon on a desk", seed=1)))
    assert base != other_seed
    assert base != other_prompt


async def test_seed_is_derived_from_prompt_when_missing() -> None:
    request = ImageRequest(prompt="no seed given here")
    result = await SandboxProvider().generate(task_for(request), TaskIds())
    assert result.images[0].seed == base_seed("no seed given here", None)
    assert base_seed("no seed given here", None) != base_seed("another prompt", None)
    assert 0 <= base_seed("x" * 100, None) < 2**63
    again = await generate(task_for(request))
    assert [image.data for image in result.images] == again


@pytest.mark.parametrize(
    ("model", "ratio", "tier", "expected"),
    [
        ("nano-banana-2", "16:9", "1K", (1376, 768)),
        ("nano-banana-2", "21:9", "0.5K", (792, 168)),
        ("nano-banana-2", "1:8", "0.5K", (192, 1536)),
        ("nano-banana-pro", "3:2", "2K", (2528, 1696)),
        ("nano-banana-2", "8:1", "4K", (12288, 1536)),
        ("nano-banana-2", "1:1", "4K", (4096, 4096)),
    ],
)
async def test_exact_requested_dimensions(
    model: str, ratio: str, tier: str, expected: tuple[int, int]
) -> None:
    request = ImageRequest.model_validate(
        {"prompt": "size check", "model": model, "aspect_ratio": ratio, "resolution": tier}
    )
    started = time.perf_counter()
    (data,) = await generate(task_for(request))
    elapsed = time.perf_counter() - started
    image = opened(data)
    assert image.size == expected
    assert image.format == "JPEG"
    assert elapsed < 5.0  # about 0.3 s on one core; generous for slow CI machines


async def test_exact_width_and_height_request() -> None:
    request = ImageRequest(prompt="exact pixels", width=2752, height=1536)
    (data,) = await generate(task_for(request))
    assert opened(data).size == (2752, 1536)


async def test_resolution_only_follows_first_reference() -> None:
    ref_meta = ReferenceImage(media_key="k", mime_type="image/png", width=300, height=200)
    request = ImageRequest(prompt="follow the reference", resolution="2K", references=(ref_meta,))
    task = task_for(request, (reference(size=(300, 200)),))
    assert task.size.width is None
    assert output_size(task) == (2048, 1365)
    (data,) = await generate(task)
    assert opened(data).size == (2048, 1365)
    tall = ReferenceImage(media_key="k", mime_type="image/png", width=100, height=400)
    tall_request = ImageRequest(prompt="tall", resolution="0.5K", references=(tall,))
    tall_task = task_for(tall_request, (reference(size=(100, 400)),))
    assert output_size(tall_task) == (128, 512)


async def test_n_images_with_consecutive_seeds() -> None:
    request = ImageRequest(prompt="three bananas", seed=10, number_results=3)
    result = await SandboxProvider().generate(task_for(request), TaskIds())
    assert [image.seed for image in result.images] == [10, 11, 12]
    assert len({image.data for image in result.images}) == 3
    assert all(image.cost_micros is None and not image.nsfw for image in result.images)
    assert result.cost_micros is None
    assert result.notices == (SANDBOX_NOTICE,)


async def test_seed_wraps_inside_the_seed_range() -> None:
    request = ImageRequest(prompt="edge of the seed range", seed=2**63 - 1, number_results=2)
    result = await SandboxProvider().generate(task_for(request), TaskIds())
    assert [image.seed for image in result.images] == [2**63 - 1, 0]


async def test_task_id_is_reported_before_rendering() -> None:
    provider = SandboxProvider(delay=0.3)
    reported = asyncio.Event()
    ids: list[str] = []

    async def on_task_id(task_id: str) -> None:
        ids.append(task_id)
        reported.set()

    request = ImageRequest(prompt="wait for it", seed=5)
    running = asyncio.create_task(provider.generate(task_for(request), on_task_id))
    try:
        await asyncio.wait_for(reported.wait(), 2)
        assert not running.done()
        result = await asyncio.wait_for(running, 10)
    finally:
        running.cancel()
    assert len(ids) == 1
    uuid4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(f"sandbox-{uuid4}", ids[0])
    assert len(result.images) == 1


async def test_failing_task_id_callback_stops_the_generation() -> None:
    class Refused(Exception):
        pass

    async def on_task_id(task_id: str) -> None:
        raise Refused(task_id)

    with pytest.raises(Refused):
        await SandboxProvider().generate(task_for(ImageRequest(prompt="never")), on_task_id)


async def test_resume_gives_the_same_images() -> None:
    provider = SandboxProvider()
    task = task_for(ImageRequest(prompt="resume me", seed=3, number_results=2))
    ids = TaskIds()
    generated = await provider.generate(task, ids)
    resumed = await provider.resume(task, ids.ids[0])
    assert generated == resumed


async def test_references_are_composited_along_the_bottom() -> None:
    request = ImageRequest(prompt="with a reference", seed=9, output_format="PNG")
    (plain,) = await generate(task_for(request))
    (with_ref,) = await generate(task_for(request, (reference((255, 0, 0)),)))
    assert plain != with_ref
    without, with_image = opened(plain), opened(with_ref)
    box = ImageChops.difference(without.convert("RGB"), with_image.convert("RGB")).getbbox()
    assert box is not None
    assert box[1] > with_image.height // 2  # only the bottom strip changed
    strip = with_image.convert("RGB").crop(box)
    reds = [p for p in strip.get_flattened_data() if p[0] > 230 and p[1] < 30 and p[2] < 30]
    assert len(reds) > 1000  # the red reference is visible


async def test_unreadable_reference_gets_a_placeholder(caplog: pytest.LogCaptureFixture) -> None:
    broken = ReferenceData(b"not an image", "image/png", 100, 100)
    with caplog.at_level(logging.WARNING):
        (data,) = await generate(task_for(ImageRequest(prompt="broken ref"), (broken,)))
    assert opened(data).size == (1024, 1024)
    assert any("reference 0" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(("fmt", "pillow"), [("PNG", "PNG"), ("WEBP", "WEBP"), ("JPG", "JPEG")])
async def test_output_formats(fmt: str, pillow: str) -> None:
    request = ImageRequest.model_validate(
        {"prompt": "formats", "seed": 1, "output_format": fmt, "aspect_ratio": "4:3"}
    )
    (data,) = await generate(task_for(request))
    image = opened(data)
    assert image.format == pillow
    assert image.size == (1200, 896)


async def test_long_and_multiline_prompts_render() -> None:
    prompt = "line one\n\nline two " + "word " * 8000
    (data,) = await generate(task_for(ImageRequest(prompt=prompt, seed=1, resolution="0.5K")))
    assert opened(data).size == (512, 512)


async def test_capabilities_name_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    provider = SandboxProvider(name="sandbox-eu")
    assert provider.name == "sandbox-eu"
    caps = provider.capabilities
    assert caps.models == frozenset({"nano-banana-pro", "nano-banana-2"})
    assert (caps.max_references, caps.inline_references, caps.reports_cost) == (14, True, False)
    assert (caps.resumable, caps.nsfw_flag) == (True, False)
    with caplog.at_level(logging.DEBUG, logger="bot.providers.sandbox"):
        ids = TaskIds()
        task = task_for(ImageRequest(prompt="logging"))
        await provider.generate(task, ids)
        await provider.resume(task, ids.ids[0])
    records = [r for r in caplog.records if r.name.startswith("bot.providers.sandbox")]
    assert len(records) >= 3
    assert all("sandbox" in record.getMessage() for record in records)
