"""A scripted in-process provider for core tests: real image bytes, programmable outcomes."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from bot.errors import ProviderError
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)

__all__ = ["ScriptedProvider", "png_bytes"]


def png_bytes(width: int, height: int, color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """A real PNG of ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class ScriptedProvider:
    """Implements :class:`bot.interfaces.Provider`; each call consults ``outcome``.

    Attributes:
        outcome: called with the task; returns None to succeed, or an error to raise.
        cost_micros: reported cost per image (None: the provider reports no cost).
        nsfw: flag every image NSFW.
        delay: seconds each generation takes.
        gate: if set, generations wait for it (to hold jobs "in flight").
        calls: every task received, in order; ``resumed`` every (task, task_id) resumed.
    """

    name: str = "scripted"
    cost_micros: int | None = 50_000
    nsfw: bool = False
    delay: float = 0.0
    gate: asyncio.Event | None = None
    notices: tuple[str, ...] = ()
    outcome: Callable[[GenerationTask], ProviderError | None] = lambda task: None
    calls: list[GenerationTask] = field(default_factory=list)
    resumed: list[tuple[GenerationTask, str]] = field(default_factory=list)
    capabilities: ProviderCapabilities = field(
        default_factory=lambda: ProviderCapabilities(
            models=frozenset({"nano-banana-pro", "nano-banana-2"}), nsfw_flag=True
        )
    )

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        self.calls.append(task)
        await on_task_id(f"{self.name}-{uuid.uuid4()}")
        return await self._finish(task)

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        self.resumed.append((task, task_id))
        return await self._finish(task)

    async def _finish(self, task: GenerationTask) -> GenerationResult:
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        error = self.outcome(task)
        if error is not None:
            raise error
        width = task.size.width or 64
        height = task.size.height or 64
        data = await asyncio.to_thread(png_bytes, width, height)
        base = task.request.seed if task.request.seed is not None else 7
        images = tuple(
            GeneratedImage(data=data, seed=base + i, cost_micros=self.cost_micros, nsfw=self.nsfw)
            for i in range(task.request.number_results)
        )
        total = None if self.cost_micros is None else self.cost_micros * len(images)
        return GenerationResult(images=images, cost_micros=total, notices=self.notices)
