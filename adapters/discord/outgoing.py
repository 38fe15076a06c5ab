"""Outgoing messages: results fitted to the upload limit, and the ways to post them.

A job is answered through its interaction token while that lives (editing ``@original``,
then followups), and with the bot token afterwards (a channel message mentioning the
requester). Mention jobs have no token: their progress message is edited with the bot token.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import discord

from adapters.discord.text import (
    button_label,
    can_upscale,
    fit_content,
    header,
    notice_lines,
    result_lines,
)
from adapters.discord.translate import (
    DEFAULT_UPLOAD_LIMIT,
    ButtonRef,
    ReplyHandle,
    chunk,
    token_alive,
)
from adapters.discord.views import ButtonSpec, result_view
from bot.catalog import Catalog
from bot.interfaces import MediaStore
from bot.media.fit import fit_upload
from bot.models import Job, JobAction, ResultImage

__all__ = ["Outgoing", "Poster", "TokenDead", "Upload", "compose", "prepare_uploads"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ORIGINAL: Final = cast(int, "@original")
"""Discord's alias of an interaction's first response. discord.py types ``message_id`` as int
but only formats it into the route, exactly as ``Interaction.edit_original_response`` does."""
_MIB: Final = 1024 * 1024
_DEAD_TOKEN_CODES: Final = frozenset({50027, 10015})  # invalid webhook token, unknown webhook


class TokenDead(Exception):
    """The interaction token no longer works (expired, or the interaction is gone)."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One result image as it will be posted.

    Attributes:
        image: the stored result.
        data: the bytes to upload, or None when the image is not posted here.
        filename: ``<job>-<n>.<ext>``.
        note: why the image was re-encoded or is not shown, for people; None if unchanged.
        shown: posted (or linked); False for NSFW results in channels that are not
            age-restricted, which then get no buttons either.
    """

    image: ResultImage
    data: bytes | None
    filename: str
    note: str | None = None
    shown: bool = True


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to post: text, files (name, bytes) and rows of buttons."""

    content: str
    files: tuple[tuple[str, bytes], ...] = ()
    buttons: tuple[tuple[ButtonSpec, ...], ...] = ()

    def discord_files(self) -> list[discord.File]:
        return [discord.File(io.BytesIO(data), filename=name) for name, data in self.files]

    def view(self) -> discord.ui.View | None:
        return result_view(self.buttons) if self.buttons else None


async def prepare_uploads(
    media: MediaStore,
    job: Job,
    images: Sequence[ResultImage],
    *,
    limit: int,
    channel_nsfw: bool,
) -> list[Upload]:
    """Read each image and fit it under ``limit`` bytes (re-encoding off the event loop).

    NSFW-flagged images are never posted where the channel is not age-restricted.
    """
    uploads = []
    for image in images:
        number = image.index + 1
        if image.withheld or (image.nsfw and not channel_nsfw):
            note = (
                f"Image {number} was flagged NSFW by the provider and is not shown here: "
                "this channel is not age-restricted."
            )
            uploads.append(Upload(image, None, "", note, shown=False))
            continue
        data = await media.get(image.media_key)
        fitted = await asyncio.to_thread(fit_upload, data, limit)
        if fitted is None:
            where = (
                f" Download it from the provider: <{image.provider_url}>"
                if image.provider_url
                else f" The provider gave no link; it is kept in bananabot's store (job {job.id})."
            )
            note = (
                f"Image {number} is {len(data) / _MIB:.1f} MiB and does not fit this channel's "
                f"{limit / _MIB:.0f} MiB upload limit, even re-encoded.{where}"
            )
            uploads.append(Upload(image, None, "", note))
            continue
        changed: str | None = None
        if fitted.reencoded:
            kind = "JPEG" if fitted.extension == "jpg" else "WebP"
            changed = (
                f"Image {number} was re-encoded as {kind} ({len(data) / _MIB:.1f} MiB → "
                f"{len(fitted.data) / _MIB:.1f} MiB, same pixels) to fit the "
                f"{limit / _MIB:.0f} MiB upload limit."
            )
        uploads.append(Upload(image, fitted.data, f"{job.id}-{number}.{fitted.extension}", changed))
    return uploads


def compose(catalog: Catalog, job: Job, uploads: Sequence[Upload], summary: str) -> list[Outgoing]:
    """The result as messages: at most 5 images (5 rows of buttons, 10 files) in each."""
    messages = []
    groups = chunk([u.image for u in uploads])
    by_index = {u.image.index: u for u in uploads}
    for number, group in enumerate(groups):
        parts = [by_index[image.index] for image in group]
        lines = [header(job) if number == 0 else f"{header(job)} (continued)"]
        lines += result_lines(job, [u.image for u in parts], numbered=len(uploads) > 1)
        if number == 0:
            lines.append(summary)
            lines += notice_lines(job)
        lines += [f"-# {u.note}" for u in parts if u.note]
        rows = []
        for upload in parts:
            if not upload.shown:
                continue
            actions = [JobAction.VARY, JobAction.UPSCALE, JobAction.EDIT]
            if not can_upscale(catalog, job, upload.image):
                actions.remove(JobAction.UPSCALE)
            rows.append(
                tuple(
                    ButtonSpec(
                        ButtonRef(action, job.id, upload.image.index),
                        button_label(action, upload.image.index, len(uploads)),
                    )
                    for action in actions
                )
            )
        files = tuple((u.filename, u.data) for u in parts if u.data is not None)
        messages.append(Outgoing(fit_content("\n".join(lines)), files, tuple(rows)))
    return messages


@dataclass
class Poster:
    """Posts and edits through an interaction token, or the bot token when it is dead.

    Args:
        client: the logged-in client (its HTTP session and state are used).
        token_lifetime: seconds an interaction token works (Discord: 900).
        timeout: seconds one Discord request may take (uploads included).
        clock: Unix time.
    """

    client: discord.Client
    token_lifetime: float = 900.0
    timeout: float = 120.0
    clock: Callable[[], float] = field(default=time.time)

    def alive(self, handle: ReplyHandle) -> bool:
        return token_alive(handle, self.clock(), self.token_lifetime)

    def _webhook(self, handle: ReplyHandle) -> discord.Webhook:
        assert handle.token is not None
        hook = discord.Webhook.partial(handle.application_id, handle.token, client=self.client)
        # The interaction's followup webhook, as Interaction.followup builds it: only an
        # application webhook may send ephemeral messages.
        hook.type = discord.WebhookType.application
        return hook

    async def _guarded(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except discord.HTTPException as exc:
            if exc.status == 401 or exc.code in _DEAD_TOKEN_CODES:
                raise TokenDead(f"interaction token refused ({exc.status}, {exc.code})") from exc
            raise

    async def edit(
        self,
        handle: ReplyHandle,
        message: Outgoing,
        *,
        keep_files: bool = False,
    ) -> None:
        """Edit the handle's message (``@original`` by token, or a mention job's message by the
        bot token) to ``message``; files replace the old ones unless ``keep_files``.

        Raises:
            TokenDead: the interaction token no longer works.
            discord.HTTPException: Discord refused the edit.
        """
        kwargs: dict[str, Any] = {"content": message.content}
        if not keep_files:
            kwargs["attachments"] = message.discord_files()
        view = message.view()
        if view is not None or not keep_files:
            kwargs["view"] = view
        none = discord.AllowedMentions.none()
        if handle.token is None:
            if handle.message_id is None:
                raise ValueError("a mention job's handle names its progress message")
            channel = self.client.get_partial_messageable(
                handle.channel_id, guild_id=handle.guild_id
            )
            target = channel.get_partial_message(handle.message_id)
            await self._guarded(target.edit(allowed_mentions=none, **kwargs))
            return
        if not self.alive(handle):
            raise TokenDead("the interaction token has expired")
        hook = self._webhook(handle)
        await self._guarded(
            hook.edit_message(handle.message_id or ORIGINAL, allowed_mentions=none, **kwargs)
        )

    async def followup(self, handle: ReplyHandle, message: Outgoing, *, ephemeral: bool) -> None:
        """Send a followup message through the token (after ``@original`` was edited).

        Raises:
            TokenDead: the token no longer works (or there is none).
        """
        if handle.token is None or not self.alive(handle):
            raise TokenDead("no live interaction token")
        view = message.view()
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        await self._guarded(
            self._webhook(handle).send(
                message.content,
                files=message.discord_files(),
                ephemeral=ephemeral,
                allowed_mentions=discord.AllowedMentions.none(),
                wait=True,
                **extra,
            )
        )

    async def delete_original(self, handle: ReplyHandle) -> None:
        """Delete ``@original`` (a refusal's public placeholder). Best effort."""
        if handle.token is None or not self.alive(handle):
            return
        try:
            await self._guarded(self._webhook(handle).delete_message(ORIGINAL))
        except (TokenDead, discord.HTTPException) as exc:
            log.info("could not delete a placeholder", extra={"error": str(exc)})

    async def channel_send(self, handle: ReplyHandle, message: Outgoing, *, mention: bool) -> None:
        """Post in the handle's channel with the bot token; ``mention`` pings only the requester.

        Raises:
            discord.HTTPException: Discord refused it (e.g. no Send Messages permission).
        """
        channel = self.client.get_partial_messageable(handle.channel_id, guild_id=handle.guild_id)
        content = fit_content(
            f"<@{handle.user_id}> {message.content}" if mention else message.content
        )
        mentions = (
            discord.AllowedMentions(
                everyone=False,
                roles=False,
                replied_user=False,
                users=[discord.Object(id=handle.user_id)],
            )
            if mention
            else discord.AllowedMentions.none()
        )
        view = message.view()
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        await self._guarded(
            channel.send(content, files=message.discord_files(), allowed_mentions=mentions, **extra)
        )

    async def tidy_original(self, handle: ReplyHandle, text: str) -> None:
        """After the token died, edit the stale "thinking…" message with the bot token.

        Best effort: Discord may refuse edits of interaction responses by the bot token.
        """
        if handle.original_id is None:
            return
        channel = self.client.get_partial_messageable(handle.channel_id, guild_id=handle.guild_id)
        try:
            await self._guarded(
                channel.get_partial_message(handle.original_id).edit(
                    content=text, allowed_mentions=discord.AllowedMentions.none()
                )
            )
        except (TokenDead, discord.HTTPException) as exc:
            log.info("could not tidy an expired response", extra={"error": str(exc)})

    def channel_limit(self, handle: ReplyHandle) -> int:
        """The bot's per-file upload limit in the handle's channel (guild boost tier)."""
        guild = self.client.get_guild(handle.guild_id) if handle.guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
