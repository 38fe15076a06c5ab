"""The ``slack`` platform's :class:`bot.interfaces.Delivery`: progress, results and failures.

``on_update`` does no network I/O (the worker awaits it): it records the job's latest state
and wakes that job's sender, a task owned by this object. Each job has one sender, so its
messages go out in order; ``chat.update`` of the status message happens at most once every
``progress_interval`` seconds (Slack: ``chat.update`` is Tier 3, platforms.md §13.2), the
latest state wins, and a state never goes backwards (no "queued" after "generating").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.slack.blocks import (
    SLACK_IMAGE_TYPES,
    error_text,
    failure_message,
    progress_message,
    result_messages,
)
from adapters.slack.outgoing import Poster, api_error
from adapters.slack.translate import PLATFORM, ReplyHandle, decode_handle
from bot.catalog import Catalog
from bot.errors import BananabotError
from bot.interfaces import MediaStore
from bot.messages import describe_done, render_failure
from bot.models import Done, Failed, Generating, JobUpdate, Queued, ResultImage

__all__ = ["SlackDelivery", "result_filename"]

log = logging.getLogger(__name__)

_RANK: Final = {"queued": 0, "generating": 1, "done": 2, "failed": 2}
_TERMINAL: Final = 2
_FINISHED_REMEMBERED: Final = 10_000
_EXTENSIONS: Final = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}


def result_filename(image: ResultImage) -> str:
    """``bananabot-<job>-<n>.<ext>`` (the extension tells Slack the file type)."""
    return f"bananabot-{image.job_id}-{image.index + 1}.{_EXTENSIONS.get(image.mime_type, 'png')}"


@dataclass
class _Slot:
    rank: int = -1
    pending: JobUpdate | None = None
    last_edit: float = float("-inf")
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task[None] | None = None


class SlackDelivery:
    """Answers Slack jobs through their reply handle (see :class:`ReplyHandle`).

    Args:
        poster: how messages are sent.
        catalog: the model catalog (display names, which images can be upscaled).
        media: where result images are read from.
        progress_interval: seconds between ``chat.update`` calls for one job.
    """

    platform: Final = PLATFORM

    def __init__(
        self,
        *,
        poster: Poster,
        catalog: Catalog,
        media: MediaStore,
        progress_interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poster = poster
        self._catalog = catalog
        self._media = media
        self._interval = progress_interval
        self._monotonic = monotonic
        self._slots: dict[str, _Slot] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def on_update(self, update: JobUpdate) -> None:
        """Record the job's latest state and wake its sender; returns at once."""
        job = update.job
        if job.origin.platform != PLATFORM or self._closed or job.id in self._finished:
            return
        rank = _RANK[update.kind]
        slot = self._slots.setdefault(job.id, _Slot())
        if rank < slot.rank or slot.rank == _TERMINAL:
            return
        slot.rank, slot.pending = rank, update
        slot.wake.set()
        if slot.sender is None or slot.sender.done():
            slot.sender = self.spawn(self._drain(job.id, slot), name=f"slack-send:{job.id}")

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task this delivery owns (cancelled and awaited by :meth:`close`)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until every sender has finished (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop sending: cancel every sender and wait for them."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self, job_id: str, slot: _Slot) -> None:
        try:
            while (update := slot.pending) is not None:
                terminal = _RANK[update.kind] == _TERMINAL
                wait = slot.last_edit + self._interval - self._monotonic()
                if not terminal and wait > 0:
                    slot.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await slot.wake.wait()
                    continue  # the latest state (maybe the result) goes next
                slot.pending = None
                await self._send(update)
                if terminal:
                    break
                slot.last_edit = self._monotonic()
        finally:
            if slot.rank == _TERMINAL and slot.pending is None:
                self._slots.pop(job_id, None)
                self._finished[job_id] = None
                while len(self._finished) > _FINISHED_REMEMBERED:
                    self._finished.popitem(last=False)

    async def _send(self, update: JobUpdate) -> None:
        try:
            handle = decode_handle(update.job.origin.reply_handle)
        except ValueError:
            log.warning("job without a Slack reply handle", extra={"job": update.job.id})
            return
        try:
            if isinstance(update, Queued | Generating):
                await self._progress(handle, update)
            elif isinstance(update, Done):
                await self._done(handle, update)
            else:
                await self._failed(handle, update)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "Slack delivery failed", extra={"job": update.job.id, "kind": update.kind}
            )

    async def _progress(self, handle: ReplyHandle, update: Queued | Generating) -> None:
        if handle.status_ts is None:
            return
        try:
            await self._poster.update(
                handle.channel, handle.status_ts, progress_message(self._catalog, update)
            )
        except SlackApiError as exc:
            log.info(
                "progress update refused", extra={"job": update.job.id, "error": api_error(exc)}
            )

    async def _done(self, handle: ReplyHandle, update: Done) -> None:
        job = update.job
        file_ids: dict[int, str] = {}
        for image in update.images:
            if image.withheld:
                continue  # NSFW results are never uploaded to Slack
            try:
                data = await self._media.get(image.media_key)
                file_id = await self._poster.upload(
                    handle, data, result_filename(image), job.request.prompt, job.request.prompt
                )
            except (SlackApiError, SlackClientError, BananabotError) as exc:
                log.warning(
                    "result upload failed",
                    extra={"job": job.id, "index": image.index, "error": api_error(exc)},
                )
                continue
            if image.mime_type in SLACK_IMAGE_TYPES:
                file_ids[image.index] = file_id
        summary = describe_done(update)
        messages = result_messages(self._catalog, job, update.images, file_ids, summary)
        plain = result_messages(
            self._catalog, job, update.images, file_ids, summary, with_images=False
        )
        await self._poster.show(handle, messages, plain)
        log.info("Slack result posted", extra={"job": job.id, "files": len(file_ids)})

    async def _failed(self, handle: ReplyHandle, update: Failed) -> None:
        if handle.status_ts is not None:
            try:
                await self._poster.update(
                    handle.channel, handle.status_ts, failure_message(update.job)
                )
            except SlackApiError as exc:
                log.info("failure note refused", extra={"error": api_error(exc)})
        await self._poster.ephemeral(
            handle, error_text(render_failure(update.error_code, update.message))
        )
