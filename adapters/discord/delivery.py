"""The ``discord`` platform's :class:`bot.interfaces.Delivery`: progress, results and failures.

``on_update`` never does network I/O itself (the worker awaits it): it records the job's
latest state and wakes that job's sender, a task owned by this object. Each job has at most
one sender, so its messages go out in order; progress edits are throttled to one every
``progress_interval`` seconds, the latest state wins, and a state never goes backwards
(no "queued" after "generating", nothing after the result).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import discord

from adapters.discord.outgoing import Outgoing, Poster, TokenDead, compose, prepare_uploads
from adapters.discord.text import failure_note, header, progress_text
from adapters.discord.translate import PLATFORM, ReplyHandle, decode_handle
from bot.catalog import Catalog
from bot.coalesce import UpdateCoalescer
from bot.interfaces import MediaStore
from bot.messages import describe_done, render_failure
from bot.models import Done, Failed, Generating, Job, JobUpdate, Queued, ResultImage

__all__ = ["DiscordDelivery"]

log = logging.getLogger(__name__)


class DiscordDelivery:
    """Answers Discord jobs through their reply handle (see :class:`ReplyHandle`).

    Args:
        poster: how messages are posted (token, then bot-token fallback).
        catalog: the model catalog (display names, which images can be upscaled).
        media: where result images are read from.
        progress_interval: seconds between progress edits of one job.
        first_progress: seconds before a job's first progress edit (at most the interval).
    """

    platform: Final = PLATFORM

    def __init__(
        self,
        *,
        poster: Poster,
        catalog: Catalog,
        media: MediaStore,
        progress_interval: float = 2.0,
        first_progress: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poster = poster
        self._catalog = catalog
        self._media = media
        self._coalescer = UpdateCoalescer(
            self._send,
            platform=PLATFORM,
            interval=progress_interval,
            first_delay=first_progress,
            monotonic=monotonic,
        )

    async def on_update(self, update: JobUpdate) -> None:
        """Record the job's latest state and wake its sender; returns at once."""
        await self._coalescer.submit(update)

    async def close(self, grace: float = 5.0) -> None:
        """Stop: drop progress at once, give results and failures being posted ``grace``
        seconds, then cancel every sender and wait for them."""
        await self._coalescer.close(grace)

    async def _send(self, update: JobUpdate) -> None:
        try:
            handle = decode_handle(update.job.origin.reply_handle)
        except ValueError:
            log.warning("job without a Discord reply handle", extra={"job": update.job.id})
            return
        try:
            if isinstance(update, Queued | Generating):
                await self._progress(handle, update)
            elif isinstance(update, Done):
                await self.post_result(handle, update.job, update.images, describe_done(update))
            else:
                await self._failed(handle, update)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "Discord delivery failed", extra={"job": update.job.id, "kind": update.kind}
            )

    async def _progress(self, handle: ReplyHandle, update: Queued | Generating) -> None:
        if handle.token is not None and not self._poster.alive(handle):
            return  # progress is not worth a channel message; the result will be
        try:
            await self._poster.edit(
                handle, Outgoing(progress_text(self._catalog, update)), keep_files=True
            )
        except TokenDead:
            return
        except discord.HTTPException as exc:
            log.info("progress edit refused", extra={"job": update.job.id, "status": exc.status})

    async def post_result(
        self,
        handle: ReplyHandle,
        job: Job,
        images: Sequence[ResultImage],
        summary: str,
        *,
        channel_nsfw: bool | None = None,
    ) -> None:
        """Post a result: ``@original`` (+ followups) while the token lives, else channel
        messages mentioning the requester, with the same buttons.

        If the token dies or Discord refuses a message part-way, only the messages not yet
        posted go to the channel; the original is tidied only when the result never
        reached it.

        Args:
            channel_nsfw: whether the channel it goes to is age-restricted (default: the
                job's origin channel).
        """
        nsfw = job.origin.channel_nsfw if channel_nsfw is None else channel_nsfw
        messages: list[Outgoing] | None = None
        sent = 0
        note = "Finished after Discord's 15-minute limit: see below."
        if handle.token is None or self._poster.alive(handle):
            messages = await self._messages(handle.filesize_limit, job, images, summary, nsfw)
            try:
                await self._poster.edit(handle, messages[0])
                sent = 1
                for message in messages[1:]:
                    if handle.token is None:
                        await self._poster.channel_send(handle, message, mention=False)
                    else:
                        await self._poster.followup(handle, message, ephemeral=False)
                    sent += 1
                return
            except TokenDead:
                log.info(
                    "token died during delivery; posting the rest in the channel",
                    extra={"job": job.id, "sent": sent},
                )
            except discord.HTTPException as exc:
                # e.g. the response was deleted, or an upload refused (413): the channel
                # still gets the rest of the result, fitted to the bot's own upload limit.
                log.warning(
                    "interaction message refused; posting the rest in the channel",
                    extra={"job": job.id, "status": exc.status, "code": exc.code, "sent": sent},
                )
                if handle.token is None:
                    raise
                note = (
                    "Discord refused the upload here (too large): see below."
                    if exc.status == 413
                    else "Discord refused to post the result here: see below."
                )
        limit = self._poster.channel_limit(handle)
        if messages is None or limit != handle.filesize_limit:
            messages = await self._messages(limit, job, images, summary, nsfw)
        for number, message in enumerate(messages[sent:], start=sent):
            await self._poster.channel_send(handle, message, mention=number == 0)
        if sent == 0:
            await self._poster.tidy_original(handle, f"{header(job)}\n{note}")

    async def _messages(
        self, limit: int, job: Job, images: Sequence[ResultImage], summary: str, nsfw: bool
    ) -> list[Outgoing]:
        uploads = await prepare_uploads(self._media, job, images, limit=limit, channel_nsfw=nsfw)
        return compose(self._catalog, job, uploads, summary)

    async def _failed(self, handle: ReplyHandle, update: Failed) -> None:
        details = render_failure(update.error_code, update.message)
        await self.refuse(handle, update.job, details, keep_note=True)

    async def refuse(
        self, handle: ReplyHandle, job: Job | None, details: str, *, keep_note: bool
    ) -> None:
        """Tell the requester privately why a job failed or was refused.

        With a live token: ``@original`` becomes a short public note, the details go in an
        ephemeral followup, and without ``keep_note`` (a refusal before anything was queued)
        the note is deleted again, so only the requester ever sees it. Without one: a
        channel message mentioning the requester (mention jobs: their progress message).
        """
        if handle.token is not None and self._poster.alive(handle):
            note = (
                failure_note(job, private=True)
                if job is not None
                else "⚠️ This request could not start; the details were sent to you privately."
            )
            try:
                await self._poster.edit(handle, Outgoing(note))
                await self._poster.followup(handle, Outgoing(f"⚠️ {details}"), ephemeral=True)
                if not keep_note:
                    await self._poster.delete_original(handle)
                return
            except TokenDead:
                pass
        text = f"⚠️ {details}" if job is None else f"{header(job)}\n⚠️ {details}"
        if handle.token is None and handle.message_id is not None:
            await self._poster.edit(handle, Outgoing(text))
            return
        await self._poster.channel_send(handle, Outgoing(text), mention=True)
