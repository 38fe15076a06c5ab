"""The sandbox provider: deterministic gradient placeholders showing the prompt and references."""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import logging
import math
import random
import textwrap
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final, TypeAlias

from PIL import Image, ImageDraw, ImageFont

from bot.errors import BananabotError, ProviderRejected
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    ReferenceData,
    TaskIdCallback,
)
from bot.media.images import decode, encode

__all__ = [
    "SANDBOX_NOTICE",
    "TIER_LONG_SIDE",
    "SandboxProvider",
    "base_seed",
    "output_size",
    "render_image",
]

logger = logging.getLogger(__name__)

SANDBOX_NOTICE: Final = "sandbox: rendered locally, not a real generation"

TIER_LONG_SIDE: Final[Mapping[str, int]] = MappingProxyType(
    {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
)
"""Long side in pixels per tier, used when the size is "resolution only" (follow a reference)."""

_SEED_SPACE: Final = 2**63  # Runware seeds are 0..2^63-1; image i's seed wraps inside it.
_PROMPT_SHOWN: Final = 1_000  # characters of the prompt drawn at most; the rest is elided
_GRADIENT_CELLS: Final = 64  # the gradient is computed on a grid this wide, then scaled up
_Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

_CAPABILITIES: Final = ProviderCapabilities(
    models=frozenset({"nano-banana-pro", "nano-banana-2"}),
    max_references=14,
    inline_references=True,
    reports_cost=False,
    resumable=True,
    nsfw_flag=False,
)


def base_seed(prompt: str, seed: int | None) -> int:
    """The seed of a request's first image: ``seed`` if given, else one derived from the prompt.

    The derived seed is the first 32 bits of the prompt's SHA-256 (Runware picks unset seeds
    in the unsigned 32-bit range too), stable across processes unlike ``hash()``. Image
    ``i`` of a request uses ``(base + i) mod 2^63``.
    """
    if seed is not None:
        return seed % _SEED_SPACE
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


def output_size(task: GenerationTask) -> tuple[int, int]:
    """The (width, height) in pixels the sandbox renders a task at.

    The resolved size if it has one; for "resolution only" (the model follows the first
    reference) the tier's long side from :data:`TIER_LONG_SIDE` at the first reference's
    aspect ratio, or a square without references.
    """
    if task.size.width is not None and task.size.height is not None:
        return task.size.width, task.size.height
    long_side = TIER_LONG_SIDE.get(task.size.tier, 1024)
    if not task.references:
        return long_side, long_side
    first = task.references[0]
    ref_w, ref_h = max(1, first.width), max(1, first.height)
    if ref_w >= ref_h:
        return long_side, max(1, round(long_side * ref_h / ref_w))
    return max(1, round(long_side * ref_w / ref_h)), long_side


def _layout(width: int, height: int) -> tuple[int, int, int, int]:
    """(unit, margin, gap, border) in pixels, all scaled to the short side."""
    unit = min(width, height)
    margin = max(2, round(unit * 0.04))
    return unit, margin, max(2, margin // 2), max(1, round(unit * 0.005))


def _line_height(font: _Font) -> int:
    _left, top, _right, bottom = font.getbbox("ÁSgjy")
    return max(1, round((bottom - top) * 1.35))


def _font(size: int) -> _Font:
    # Loaded per image on purpose: a FreeType face must not be shared between threads.
    return ImageFont.load_default(size=size)


def _gradient(width: int, height: int, seed: int) -> Image.Image:
    """A smooth two-colour linear gradient at a seed-chosen angle, computed small, scaled up."""
    rng = random.Random(seed)
    hue = rng.random()
    first = colorsys.hsv_to_rgb(hue, rng.uniform(0.45, 0.8), rng.uniform(0.8, 0.95))
    second = colorsys.hsv_to_rgb(
        (hue + rng.uniform(0.2, 0.8)) % 1.0, rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6)
    )
    angle = rng.uniform(0.0, 2 * math.pi)
    long_side = max(width, height)
    cells_w = max(2, round(_GRADIENT_CELLS * width / long_side))
    cells_h = max(2, round(_GRADIENT_CELLS * height / long_side))
    dx, dy = math.cos(angle), math.sin(angle)
    reach = abs(dx) * (cells_w - 1) + abs(dy) * (cells_h - 1) or 1.0
    start = min(0.0, dx * (cells_w - 1)) + min(0.0, dy * (cells_h - 1))
    pixels = bytearray()
    for y in range(cells_h):
        for x in range(cells_w):
            t = (dx * x + dy * y - start) / reach
            mix = zip(first, second, strict=True)
            pixels.extend(round(255 * (a + (b - a) * t)) for a, b in mix)
    small = Image.frombytes("RGB", (cells_w, cells_h), bytes(pixels))
    return small.resize((width, height), Image.Resampling.BILINEAR)


def _thumbnails(references: Sequence[ReferenceData], width: int, height: int) -> list[Image.Image]:
    """Reference images as RGBA thumbnails sized to fit one row along the bottom."""
    if not references:
        return []
    unit, margin, gap, border = _layout(width, height)
    aspects = [max(1, ref.width) / max(1, ref.height) for ref in references]
    room = width - 2 * margin - gap * (len(references) - 1) - 2 * border * len(references)
    thumb_h = max(1, min(round(unit * 0.22), math.floor(room / sum(aspects))))
    thumbs: list[Image.Image] = []
    for number, (ref, aspect) in enumerate(zip(references, aspects, strict=True)):
        size = (max(1, round(aspect * thumb_h)), thumb_h)
        try:
            with decode(ref.data, max_side=max(size)) as image:
                thumb = image.convert("RGBA").resize(size, Image.Resampling.LANCZOS)
        except BananabotError:
            logger.warning(
                "sandbox: reference %d could not be decoded; drawing a placeholder", number
            )
            thumb = Image.new("RGBA", size, (128, 128, 128, 255))
        thumbs.append(thumb)
    return thumbs


def render_image(
    width: int,
    height: int,
    *,
    seed: int,
    prompt: str,
    caption: str,
    thumbnails: Sequence[Image.Image] = (),
    fmt: str = "JPEG",
    quality: int = 90,
) -> bytes:
    """Render one sandbox picture: gradient, "SANDBOX" label, caption, prompt, thumbnails.

    Deterministic: the same arguments give the same bytes (colours and angle come from
    ``seed``). Blocking CPU work: call it from a worker thread.

    Args:
        width: pixels.
        height: pixels.
        seed: chooses the gradient's colours and angle.
        prompt: drawn wrapped over the picture (at most the first 1,000 characters).
        caption: one short line under the label, e.g. ``"seed 42 · 1/2"``.
        thumbnails: RGBA images pasted left to right along the bottom, with a border.
        fmt: ``"JPEG"``/``"JPG"``, ``"PNG"`` or ``"WEBP"``.
        quality: JPEG/WebP quality, 1..100.

    Returns:
        The encoded image, exactly ``width`` x ``height`` pixels.
    """
    canvas = _gradient(width, height, seed)
    draw = ImageDraw.Draw(canvas)
    unit, margin, gap, border = _layout(width, height)
    stroke = max(1, round(unit * 0.004))

    label_font = _font(max(10, round(unit * 0.08)))
    left, top, right, bottom = draw.textbbox((margin, margin), "SANDBOX", font=label_font)
    pad = max(2, round(unit * 0.015))
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=(20, 20, 20))
    draw.text((margin, margin), "SANDBOX", font=label_font, fill=(255, 214, 10))

    text_font = _font(max(10, round(unit * 0.045)))
    line_height = _line_height(text_font)
    y = math.ceil(bottom) + pad + margin // 2
    draw.text(
        (margin, y),
        caption,
        font=text_font,
        fill=(255, 255, 255),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0),
    )
    y += line_height + margin // 2

    strip_top = height - margin
    if thumbnails:
        thumb_h = max(t.height for t in thumbnails)
        strip_top = height - margin - border - thumb_h
        x = margin + border
        for thumb in thumbnails:
            draw.rectangle(
                (
                    x - border,
                    strip_top - border,
                    x + thumb.width - 1 + border,
                    strip_top + thumb.height - 1 + border,
                ),
                fill=(255, 255, 255),
            )
            canvas.paste(thumb, (x, strip_top), thumb)
            x += thumb.width + 2 * border + gap

    lines = _wrap(prompt, text_font, width - 2 * margin)
    room = max(0, (strip_top - margin // 2 - y) // line_height)
    if len(lines) > room:
        lines = lines[:room]
        if lines:
            lines[-1] = lines[-1].rstrip()[: max(0, len(lines[-1]) - 1)] + "…"
    for line in lines:
        draw.text(
            (margin, y),
            line,
            font=text_font,
            fill=(255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0),
        )
        y += line_height
    return encode(canvas, fmt, quality=quality, fast=True)


def _wrap(prompt: str, font: _Font, room: int) -> list[str]:
    """Wrap the prompt into lines that fit ``room`` pixels (estimated from the mean glyph)."""
    text = prompt[:_PROMPT_SHOWN] + ("…" if len(prompt) > _PROMPT_SHOWN else "")
    mean = font.getlength("the quick brown fox jumps over a lazy dog") / 41 or 1.0
    columns = max(4, int(room / mean))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, columns) or [""])
    return lines


class SandboxProvider:
    """A :class:`bot.interfaces.Provider` that draws placeholders instead of calling an API.

    Every image is a deterministic function of (seed, prompt, image index, size, format,
    references), so :meth:`resume` gives the same images as :meth:`generate`. Costs
    nothing and reports no cost; results carry :data:`SANDBOX_NOTICE`.
    """

    def __init__(self, *, delay: float = 0.0, name: str = "sandbox") -> None:
        """Create a sandbox provider.

        Args:
            delay: seconds to wait after reporting the task id, to imitate a provider.
            name: the provider name jobs are queued under.
        """
        self.name = name
        self.capabilities = _CAPABILITIES
        self._delay = delay

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        """Report a new ``sandbox-<uuid4>`` task id, wait ``delay`` seconds, then render.

        Raises:
            bot.errors.ProviderRejected: the images could not be rendered (e.g. memory).
        """
        task_id = f"sandbox-{uuid.uuid4()}"
        await on_task_id(task_id)
        logger.info(
            "sandbox: task started",
            extra={"provider": self.name, "job_id": task.job_id, "task_id": task_id},
        )
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        return await self._render(task, task_id)

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        """Render the task again; being deterministic, that gives the images it would have.

        Raises:
            bot.errors.ProviderRejected: as for :meth:`generate`.
        """
        logger.info(
            "sandbox: resuming task",
            extra={"provider": self.name, "job_id": task.job_id, "task_id": task_id},
        )
        return await self._render(task, task_id)

    async def _render(self, task: GenerationTask, task_id: str) -> GenerationResult:
        request = task.request
        width, height = output_size(task)
        first_seed = base_seed(request.prompt, request.seed)
        fmt = request.output_format or "JPG"
        quality = request.output_quality or 90
        count = request.number_results
        try:
            thumbs = await asyncio.to_thread(_thumbnails, task.references, width, height)
            images: list[GeneratedImage] = []
            for index in range(count):
                seed = (first_seed + index) % _SEED_SPACE
                data = await asyncio.to_thread(
                    render_image,
                    width,
                    height,
                    seed=seed,
                    prompt=request.prompt,
                    caption=f"seed {seed} · {index + 1}/{count} · {request.model}",
                    thumbnails=thumbs,
                    fmt=fmt,
                    quality=quality,
                )
                images.append(GeneratedImage(data, seed=seed, cost_micros=None, nsfw=False))
        except (OSError, ValueError, MemoryError) as exc:
            logger.error(
                "sandbox: rendering failed",
                extra={"provider": self.name, "job_id": task.job_id, "task_id": task_id},
            )
            raise ProviderRejected(
                self.name, f"sandbox could not render {width}x{height}: {exc}", status=0
            ) from exc
        logger.info(
            "sandbox: task finished",
            extra={
                "provider": self.name,
                "job_id": task.job_id,
                "task_id": task_id,
                "images": count,
                "width": width,
                "height": height,
            },
        )
        return GenerationResult(images=tuple(images), cost_micros=None, notices=(SANDBOX_NOTICE,))
