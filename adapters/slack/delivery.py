"""The ``slack`` platform's :class:`bot.interfaces.Delivery`: progress, results and failures.

``on_update`` does no network I/O (the worker awaits it): it records the job's latest state
and wakes that job's sender, a task owned by this object. Each job has one sender, so its
messages go out in order; ``chat.update`` of the status message happens at most once every
``progress_interval`` seconds (Slack: ``chat.update`` is Tier 3, platforms.md §13.2), the
latest state wins, and a state never goes backwards (no "queued" after "generating").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

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
from bot.coalesce import UpdateCoalescer
from bot.errors import BananabotError
from bot.interfaces import MediaStore
from bot.media.images import EXTENSION_FOR_MIME
from bot.messages import describe_done, render_failure
from bot.models import Done, Failed, Generating, JobUpdate, Queued, ResultImage

__all__ = ["SlackDelivery", "result_filename"]

log = logging.getLogger(__name__)


def result_filename(image: ResultImage) -> str:
    """``bananabot-<job>-<n>.<ext>`` (the extension tells Slack the file type)."""
    extension = EXTENSION_FOR_MIME.get(image.mime_type, "png")
    return f"bananabot-{image.job_id}-{image.index + 1}.{extension}"


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
        self._coalescer = UpdateCoalescer(
            self._send,
            platform=PLATFORM,
            interval=progress_interval,
            monotonic=monotonic,
        )

    async def on_update(self, update: JobUpdate) -> None:
        """Record the job's latest state and wake its sender; returns at once."""
        await self._coalescer.submit(update)

    async def idle(self) -> None:
        """Wait until every sender has finished (tests and shutdown)."""
        await self._coalescer.idle()

    async def close(self) -> None:
        """Stop sending: give results being posted a moment, then cancel every sender."""
        await self._coalescer.close()

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
