"""Everything bananabot sends to Slack, through slack-sdk's ``AsyncWebClient``.

Slack answers most refusals with HTTP 200 and ``{"ok": false, "error": …}`` (raised by
slack-sdk as ``SlackApiError``); 429s are retried by the client's rate-limit handler. Image
blocks that reference a just-uploaded file fail with ``invalid_blocks`` for about a second
(python-slack-sdk#1521, platforms.md §8.2): :meth:`Poster.show` retries with backoff and
then falls back to the message without image blocks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import SlackMessage
from adapters.slack.translate import ReplyHandle

__all__ = ["IMAGE_RETRY_DELAYS", "Poster", "api_error"]

log = logging.getLogger(__name__)

IMAGE_RETRY_DELAYS: Final = (0.25, 0.5, 0.75, 1.0)
"""Seconds between attempts to post an image block that Slack is still processing."""
_GONE: Final = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def api_error(exc: BaseException) -> str:
    """Slack's ``error`` code of a failed Web API call (``not_in_channel`` …), or ``""``."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", ""))
    return ""


class Poster:
    """Posts, updates, deletes, uploads and sends ephemeral notes.

    Args:
        client: the Web API client (token inside, ``base_url`` = ``SLACK_API_URL``).
        session: the adapter's HTTP session (``response_url`` posts).
        image_retry_delays: seconds between image-block attempts (see module docstring).
        clock: Unix time (``response_url`` lifetime).
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        session: Callable[[], aiohttp.ClientSession | None],
        image_retry_delays: Sequence[float] = IMAGE_RETRY_DELAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._session = session
        self._delays = tuple(image_retry_delays)
        self._clock = clock

    async def post(self, channel: str, message: SlackMessage, thread_ts: str | None = None) -> str:
        """Post a message; returns its ``ts``.

        Raises:
            SlackApiError: e.g. ``not_in_channel``, ``channel_not_found``.
        """
        response = await self.client.chat_postMessage(
            channel=channel,
            text=message.text,
            blocks=list(message.blocks),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Replace a bot message's text and blocks (``chat.update``).

        Raises:
            SlackApiError: e.g. ``message_not_found``, ``invalid_blocks``.
        """
        await self.client.chat_update(
            channel=channel, ts=ts, text=message.text, blocks=list(message.blocks)
        )

    async def delete(self, channel: str, ts: str) -> None:
        """Delete a bot message; a message that is already gone is fine."""
        try:
            await self.client.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            log.info("status message not deleted", extra={"error": api_error(exc)})

    async def upload(
        self, handle: ReplyHandle, data: bytes, filename: str, title: str, alt_text: str
    ) -> str:
        """Upload a result with ``files_upload_v2`` into the job's thread; returns the file id.

        ``files.upload`` is retired (docs.slack.dev changelog 2024-04); a file uploaded
        without a channel stays private to the bot and cannot be shown in an image block.

        Raises:
            SlackApiError, SlackClientError: the upload failed.
        """
        response = await self.client.files_upload_v2(
            file=data,
            filename=filename,
            title=title[:250] or filename,
            alt_txt=alt_text[:1000],
            channel=handle.channel,
            thread_ts=handle.upload_thread,
        )
        return str(response["file"]["id"])

    async def show(
        self,
        handle: ReplyHandle,
        messages: Sequence[SlackMessage],
        fallback: Sequence[SlackMessage],
    ) -> None:
        """Put a result in place: the first message replaces the status message (or is
        posted when there is none), the others follow in the same place. Each is retried
        while Slack still processes the files, then replaced by its ``fallback`` twin.

        Raises:
            SlackApiError: Slack refused even the fallback (e.g. ``not_in_channel``).
        """
        for number, (message, plain) in enumerate(zip(messages, fallback, strict=True)):
            target = handle.status_ts if number == 0 else None
            for attempt, delay in enumerate((*self._delays, None)):
                try:
                    await self._put(handle, target, message if delay is not None else plain)
                    break
                except SlackApiError as exc:
                    if api_error(exc) != "invalid_blocks" or delay is None:
                        raise
                    log.info("image block not ready", extra={"attempt": attempt + 1})
                    await asyncio.sleep(delay)

    async def _put(self, handle: ReplyHandle, ts: str | None, message: SlackMessage) -> None:
        if ts is not None:
            try:
                await self.update(handle.channel, ts, message)
                return
            except SlackApiError as exc:
                if api_error(exc) not in _GONE:
                    raise
        await self.post(handle.channel, message, handle.thread_ts)

    async def ephemeral(self, handle: ReplyHandle, text: str) -> bool:
        """Tell the requester privately: ``chat.postEphemeral`` (in the job's thread), else
        the ``response_url`` while it lives. Returns whether either worked; never raises."""
        try:
            await self.client.chat_postEphemeral(
                channel=handle.channel, user=handle.user, text=text, thread_ts=handle.thread_ts
            )
            return True
        except (SlackApiError, SlackClientError) as exc:
            log.info("ephemeral refused", extra={"error": api_error(exc)})
        if handle.response_url and handle.response_alive(self._clock()):
            return await self.respond(handle.response_url, text)
        return False

    async def respond(self, response_url: str, text: str, *, in_channel: bool = False) -> bool:
        """One post to a ``response_url`` (Slack allows 5 in 30 minutes); never raises."""
        session = self._session()
        if session is None:
            return False
        body = {
            "text": text,
            "response_type": "in_channel" if in_channel else "ephemeral",
            "replace_original": False,
        }
        try:
            async with session.post(
                response_url, json=body, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                if response.status == 200:
                    return True
                log.info("response_url refused", extra={"status": response.status})
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("response_url failed", extra={"error": type(exc).__name__})
        return False
