"""What each Discord entry point does: ``/imagine``, buttons, modals, the context menu,
mention replies and ``/show``.

Every interaction path answers within Discord's 3 s: checks that need no I/O answer
ephemerally first; otherwise ``defer`` is the first await. References are downloaded after
the defer, through discord.py's own session (``Attachment.read``), never by URL on the
server's file system. Refusals after a public defer go through
:meth:`DiscordDelivery.refuse` (a private followup, the public placeholder removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp
import discord

from adapters.discord.delivery import DiscordDelivery
from adapters.discord.inflight import InFlight, tracked
from adapters.discord.text import escape_text
from adapters.discord.translate import (
    DEFAULT_UPLOAD_LIMIT,
    ButtonRef,
    EditModalRef,
    ImagineModalRef,
    ReplyHandle,
    channel_nsfw,
    check_attachment,
    imagine_fields,
    is_image_attachment,
    mentions,
    modal_values,
    origin_of,
    prevalidate,
    strip_mentions,
    workspace_of,
)
from adapters.discord.views import INSTRUCTION_FIELD, PROMPT_FIELD, edit_modal, imagine_modal
from bot.errors import BananabotError, NotFound, ReferenceImageError, UserInputError
from bot.messages import describe_done, render_error, render_failure
from bot.models import Done, JobAction, JobStatus, ReferenceImage, parse_request
from bot.service import ImageService

__all__ = ["Flows"]

log = logging.getLogger(__name__)

_PENDING_KEPT: Final = 512
_PENDING_SECONDS: Final = 3600.0
_ACKS_FIRST: Final = 0.25
"""Seconds work after an ack may wait for other handlers' acks (see ``_defer``)."""
_NONE: Final = discord.AllowedMentions.none()
_INTERNAL: Final = BananabotError("unexpected error in the Discord adapter")
"""Rendered by :func:`bot.messages.render_error` as its generic internal-error text."""


def _images(attachments: Sequence[discord.Attachment]) -> list[discord.Attachment]:
    return [a for a in attachments if is_image_attachment(a.filename, a.content_type)]


class Flows:
    """The adapter's behaviour, called by the client, the commands and the buttons.

    Args:
        service: the core service.
        delivery: posts results and refusals.
        download_timeout: seconds to download one reference image.
        clock: Unix time.
        on_ack: told each ack's latency, seconds since the interaction was created.
    """

    def __init__(
        self,
        *,
        service: ImageService,
        delivery: DiscordDelivery,
        download_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_ack: Callable[[float], None] | None = None,
    ) -> None:
        self._on_ack = on_ack
        self._service = service
        self._delivery = delivery
        self._download_timeout = download_timeout
        self._clock = clock
        # "Imagine from this": the target message's images, kept from the context-menu
        # interaction (whose resolved message always carries them) until the modal submit.
        self._pending: OrderedDict[int, tuple[float, tuple[discord.Attachment, ...]]] = (
            OrderedDict()
        )
        self.inflight = InFlight()
        self._acking = 0
        self._acked = asyncio.Event()

    async def drain(self, grace: float = 5.0) -> None:
        """At shutdown: give requests in flight (deferred, still downloading or submitting)
        ``grace`` seconds to reach the queue, then cancel the rest."""
        await self.inflight.drain(grace)

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def handle_for(interaction: discord.Interaction[Any], response: object = None) -> ReplyHandle:
        """The reply handle of an interaction (after its defer, whose response names the
        ``@original`` message)."""
        original = getattr(response, "message_id", None)
        return ReplyHandle(
            application_id=interaction.application_id,
            token=interaction.token,
            issued_at=interaction.created_at.timestamp(),
            channel_id=interaction.channel_id or 0,
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            original_id=original if isinstance(original, int) else None,
            filesize_limit=interaction.filesize_limit,
        )

    async def _defer(self, interaction: discord.Interaction[Any]) -> ReplyHandle:
        self._acking += 1
        try:
            response = await interaction.response.defer(thinking=True)
            self._acked_after(interaction)
        finally:
            self._acking -= 1
            if not self._acking:
                self._acked.set()
        if self._acking:
            # Acks first: in a burst, the work after an ack (downloads, submit, its
            # messages) waits a moment for the other handlers' acks, which have a deadline.
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ACKS_FIRST):
                    await self._acked.wait()
        return self.handle_for(interaction, response)

    def _acked_after(self, interaction: discord.Interaction[Any]) -> None:
        if self._on_ack is not None:
            age = discord.utils.utcnow() - interaction.created_at
            self._on_ack(max(0.0, age.total_seconds()))

    async def _refuse_now(
        self, interaction: discord.Interaction[Any], error: BananabotError
    ) -> None:
        await interaction.response.send_message(
            f"⚠️ {render_error(error)}", ephemeral=True, allowed_mentions=_NONE
        )
        self._acked_after(interaction)

    async def _refuse(self, handle: ReplyHandle, error: BananabotError) -> None:
        level = logging.INFO if isinstance(error, UserInputError) else logging.ERROR
        log.log(level, "Discord request refused", extra={"code": error.code})
        await self._delivery.refuse(handle, None, render_error(error), keep_note=False)

    async def _refuse_internal(self, handle: ReplyHandle) -> None:
        """After an unexpected error (already logged with its traceback): the generic text,
        privately, as any refusal (never "thinking…" for ever, never a stack trace)."""
        await self._delivery.refuse(handle, None, render_error(_INTERNAL), keep_note=False)

    async def _download(self, attachment: discord.Attachment, index: int) -> ReferenceImage:
        try:
            async with asyncio.timeout(self._download_timeout):
                data = await attachment.read()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            raise ReferenceImageError(
                f"{attachment.filename} could not be downloaded", index
            ) from exc
        reference = await self._service.load_reference(data, index)
        # Link-only providers (Runflow, Runbase) may fetch the attachment itself when the
        # bot has no public address to serve the cleaned copy from.
        return reference.model_copy(update={"url": attachment.url})

    async def _submit(
        self,
        handle: ReplyHandle,
        nsfw: bool,
        fields: Mapping[str, object],
        attachments: Sequence[discord.Attachment],
        key: str,
    ) -> None:
        try:
            references = await self._download_all(attachments)
            request = parse_request({**fields, "references": references})
            await self._service.submit(request, origin_of(handle, nsfw), idempotency_key=key)
        except BananabotError as exc:
            await self._refuse(handle, exc)
        except Exception:
            log.exception("Discord request failed after its defer", extra={"key": key})
            await self._refuse_internal(handle)

    async def _download_all(
        self, attachments: Sequence[discord.Attachment]
    ) -> tuple[ReferenceImage, ...]:
        """Every reference at once, in order; a failure names the first failing index."""
        outcomes = await asyncio.gather(
            *(self._download(a, i) for i, a in enumerate(attachments)), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return tuple(o for o in outcomes if not isinstance(o, BaseException))

    def _checked(
        self, fields: Mapping[str, object], attachments: Sequence[discord.Attachment]
    ) -> None:
        for index, attachment in enumerate(attachments):
            check_attachment(attachment.filename, attachment.content_type, attachment.size, index)
        sizes = [(a.width or 0, a.height or 0) for a in attachments]
        prevalidate(self._service.catalog, fields, sizes)

    # --- /imagine -----------------------------------------------------------------------

    @tracked
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        fields: Mapping[str, object],
        attachments: Sequence[discord.Attachment],
    ) -> None:
        """``/imagine``: check, defer, download the references, submit."""
        try:
            self._checked(fields, attachments)
        except UserInputError as exc:
            await self._refuse_now(interaction, exc)
            return
        handle = await self._defer(interaction)
        await self._submit(
            handle,
            channel_nsfw(interaction.channel),
            fields,
            attachments,
            f"discord:{interaction.id}",
        )

    # --- buttons and modals -------------------------------------------------------------

    @tracked
    async def on_button(self, interaction: discord.Interaction[Any], ref: ButtonRef) -> None:
        """Vary / Upscale 4K: a child job in a new message. Edit: the instruction modal."""
        if ref.action is JobAction.EDIT:
            await interaction.response.send_modal(edit_modal(ref.job_id, ref.index))
            return
        handle = await self._defer(interaction)
        await self._act(interaction, handle, ref.action, ref.job_id, ref.index, None)

    async def _act(
        self,
        interaction: discord.Interaction[Any],
        handle: ReplyHandle,
        action: JobAction,
        job_id: str,
        index: int,
        instruction: str | None,
    ) -> None:
        origin = origin_of(handle, channel_nsfw(interaction.channel))
        try:
            await self._service.act(
                action,
                job_id,
                index,
                origin,
                idempotency_key=f"discord:{interaction.id}",
                instruction=instruction,
            )
        except BananabotError as exc:
            await self._refuse(handle, exc)
        except Exception:
            log.exception("Discord action failed after its defer", extra={"action": action.value})
            await self._refuse_internal(handle)

    @tracked
    async def on_modal(
        self, interaction: discord.Interaction[Any], ref: EditModalRef | ImagineModalRef
    ) -> None:
        """A modal submit, handled from its custom id alone (works after restarts)."""
        data: Mapping[str, Any] = interaction.data or {}
        values = modal_values(data.get("components") or [])
        if isinstance(ref, EditModalRef):
            handle = await self._defer(interaction)
            instruction = values.get(INSTRUCTION_FIELD, "")
            await self._act(interaction, handle, JobAction.EDIT, ref.job_id, ref.index, instruction)
            return
        fields = imagine_fields(prompt=values.get(PROMPT_FIELD, ""))
        kept = self._take_pending(ref.message_id)
        try:
            self._checked(fields, kept or ())
        except UserInputError as exc:
            await self._refuse_now(interaction, exc)
            return
        handle = await self._defer(interaction)
        attachments = kept if kept is not None else await self._fetch_images(interaction, ref)
        if not attachments:
            await self._refuse(
                handle,
                NotFound(
                    "the images of that message are no longer available to bananabot; "
                    'use "Imagine from this" on it again'
                ),
            )
            return
        try:
            self._checked(fields, attachments)
        except UserInputError as exc:
            await self._refuse(handle, exc)
            return
        await self._submit(
            handle,
            channel_nsfw(interaction.channel),
            fields,
            attachments,
            f"discord:{interaction.id}",
        )

    async def _fetch_images(
        self, interaction: discord.Interaction[Any], ref: ImagineModalRef
    ) -> list[discord.Attachment]:
        # After a restart the kept images are gone: read the message again with the bot
        # token. Without the Message Content intent Discord blanks other people's
        # attachments here, so this works for the bot's own messages only.
        channel = interaction.client.get_partial_messageable(
            interaction.channel_id or 0, guild_id=interaction.guild_id
        )
        try:
            message = await channel.fetch_message(ref.message_id)
        except (discord.HTTPException, aiohttp.ClientError):
            return []
        return _images(message.attachments)

    # --- "Imagine from this" ------------------------------------------------------------

    @tracked
    async def imagine_from_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        """The message context menu: keep the message's images, ask for the prompt."""
        images = _images(message.attachments)
        if not images:
            await self._refuse_now(
                interaction,
                ReferenceImageError("that message has no PNG, JPEG, WebP or GIF images"),
            )
            return
        await interaction.response.send_modal(imagine_modal(message.id, len(images)))
        self._pending[message.id] = (self._clock(), tuple(images))
        self._pending.move_to_end(message.id)
        while len(self._pending) > _PENDING_KEPT:
            self._pending.popitem(last=False)

    def _take_pending(self, message_id: int) -> tuple[discord.Attachment, ...] | None:
        kept = self._pending.get(message_id)
        if kept is None or self._clock() - kept[0] > _PENDING_SECONDS:
            return None
        return kept[1]

    # --- mentions -----------------------------------------------------------------------

    @tracked
    async def on_mention(self, message: discord.Message, bot_id: int, application_id: int) -> None:
        """``@bananabot <prompt>`` (optionally replying to a message with images): the
        references are the replied-to message's images, then the reply's own.

        Only an explicit mention in the text counts: a reply ping alone ("thanks!" under a
        result) never starts a paid job.
        """
        if message.author.bot or not mentions(message.content, bot_id):
            return
        replied = await self._replied_to(message)
        attachments = _images(replied.attachments if replied else []) + _images(message.attachments)
        fields = imagine_fields(prompt=strip_mentions(message.content, bot_id))
        try:
            self._checked(fields, attachments)
        except UserInputError as exc:
            await message.reply(
                f"⚠️ {render_error(exc)}", mention_author=False, allowed_mentions=_NONE
            )
            return
        progress = await message.reply(
            f"**{escape_text(str(fields['prompt']))}** — <@{message.author.id}>\n⏳ Starting…",
            mention_author=False,
            allowed_mentions=_NONE,
        )
        guild = message.guild
        handle = ReplyHandle(
            application_id=application_id,
            issued_at=self._clock(),
            channel_id=message.channel.id,
            user_id=message.author.id,
            guild_id=guild.id if guild else None,
            message_id=progress.id,
            filesize_limit=guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT,
        )
        await self._submit(
            handle,
            channel_nsfw(message.channel),
            fields,
            attachments,
            f"discord:msg:{message.id}",
        )

    @staticmethod
    async def _replied_to(message: discord.Message) -> discord.Message | None:
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        try:
            return await message.channel.fetch_message(reference.message_id)
        except discord.HTTPException:
            return None

    # --- /show --------------------------------------------------------------------------

    @tracked
    async def show(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """``/show job:<id>``: re-post a past result here with live buttons."""
        handle = await self._defer(interaction)
        try:
            job, images = await self._service.job(job_id.strip())
            if job.origin.workspace_id != workspace_of(handle.guild_id, handle.user_id):
                raise NotFound(f"no job {job_id}")
        except BananabotError as exc:
            await self._refuse(handle, exc)
            return
        if job.status is not JobStatus.SUCCEEDED:
            text = (
                render_failure(job.error_code or "", job.error_message or "")
                if job.status.terminal
                else f"Job {job.id} is {job.status.value}; its result is not ready yet."
            )
            await self._delivery.refuse(handle, None, text, keep_note=False)
            return
        await self._delivery.post_result(
            handle,
            job,
            images,
            describe_done(Done(job=job, images=tuple(images))),
            channel_nsfw=channel_nsfw(interaction.channel),
        )
