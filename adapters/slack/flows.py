"""What each Slack entry point does after its ``ack()``: ``/imagine``, mentions, buttons,
the Edit modal.

Every flow posts the job's status message first (its ``ts`` goes into the reply handle, so
progress and the result land in it even after a restart), then submits. A refusal removes
that status message again and tells the requester privately (``chat.postEphemeral``, else
the ``response_url``), in the words of :mod:`bot.messages`. The budget is checked before the
status message is posted, so an over-budget request shows nothing in the channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from slack_sdk.errors import SlackApiError, SlackClientError

from adapters.slack.blocks import error_text, pending_message
from adapters.slack.files import SlackFiles, is_image
from adapters.slack.outgoing import Poster, api_error
from adapters.slack.translate import (
    ActionRef,
    EditRef,
    ReplyHandle,
    edit_too_short,
    imagine_fields,
    origin_for,
    prevalidate,
    result_ref,
    strip_mention,
)
from bot.errors import BananabotError, ReferenceImageError, UserInputError
from bot.messages import render_error
from bot.models import ImageRequest, JobAction, Origin, ReferenceImage
from bot.service import ImageService, Submitted

__all__ = ["Flows", "Place"]

log = logging.getLogger(__name__)

NOT_IN_CHANNEL: Final = (
    "bananabot is not a member of this channel, so it cannot post images here. Invite it "
    "with `/invite @bananabot` (or talk to it in a direct message). Nothing was charged."
)
_ACTION_TITLES: Final = {
    JobAction.VARY: "Variation",
    JobAction.UPSCALE: "Upscale to 4K",
    JobAction.EDIT: "Edit",
}

Submit = Callable[[Origin], Awaitable[Submitted]]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a request came from and where its messages go.

    Attributes:
        team_id: the workspace.
        channel: the conversation.
        user: the requester.
        thread_ts: the thread to answer in (None: the channel itself).
        response_url: the payload's ``response_url``, if it had one.
        response_at: when it was received, Unix seconds.
    """

    team_id: str
    channel: str
    user: str
    thread_ts: str | None = None
    response_url: str | None = None
    response_at: float | None = None

    @property
    def handle(self) -> ReplyHandle:
        return ReplyHandle(
            channel=self.channel,
            user=self.user,
            thread_ts=self.thread_ts,
            response_url=self.response_url,
            response_at=self.response_at,
        )


class Flows:
    """The adapter's behaviour behind the bolt listeners.

    Args:
        service: the core service.
        poster: Slack output.
        files: the ``url_private`` downloader (available while the adapter serves).
    """

    def __init__(
        self, *, service: ImageService, poster: Poster, files: Callable[[], SlackFiles]
    ) -> None:
        self._service = service
        self._poster = poster
        self._files = files

    # --- common ---------------------------------------------------------------------------

    async def refuse(self, handle: ReplyHandle, error: BananabotError | str) -> None:
        """Tell the requester privately why nothing happened."""
        if isinstance(error, BananabotError):
            level = logging.INFO if isinstance(error, UserInputError) else logging.ERROR
            log.log(level, "Slack request refused", extra={"code": error.code})
            error = render_error(error)
        await self._poster.ephemeral(handle, error_text(error))

    async def _start(self, place: Place, title: str, submit: Submit) -> None:
        """Post the status message, then submit with its ts in the reply handle."""
        handle = place.handle
        try:
            ts = await self._poster.post(
                place.channel, pending_message(title, place.user), place.thread_ts
            )
        except (SlackApiError, SlackClientError) as exc:
            error = api_error(exc)
            log.info("status message refused", extra={"error": error or type(exc).__name__})
            await self.refuse(
                handle,
                NOT_IN_CHANNEL
                if error in ("not_in_channel", "channel_not_found", "is_archived")
                else "Slack refused bananabot's message here "
                f"({error or 'error'}); nothing was charged.",
            )
            return
        handle = handle.model_copy(update={"status_ts": ts})
        try:
            submitted = await submit(origin_for(place.team_id, handle))
        except BananabotError as exc:
            await self._poster.delete(place.channel, ts)
            await self.refuse(handle, exc)
            return
        if not submitted.created:  # a redelivery that outlived the in-memory dedupe
            await self._poster.delete(place.channel, ts)
        log.info(
            "Slack job submitted",
            extra={"job": submitted.job.id, "new_job": submitted.created},
        )

    async def _precheck(self, place: Place, request: ImageRequest) -> None:
        await self._service.quote(request, origin_for(place.team_id, place.handle))

    # --- /imagine ---------------------------------------------------------------------------

    async def imagine(self, place: Place, request: ImageRequest, trigger_id: str) -> None:
        """``/imagine`` after its ack: budget check, status message, submit."""
        try:
            await self._precheck(place, request)
        except BananabotError as exc:
            await self.refuse(place.handle, exc)
            return

        async def submit(origin: Origin) -> Submitted:
            return await self._service.submit(
                request, origin, idempotency_key=f"slack:cmd:{trigger_id}"
            )

        await self._start(place, request.prompt, submit)

    # --- mentions ---------------------------------------------------------------------------

    async def mention(
        self, place: Place, event: Mapping[str, Any], bot_user_id: str, bot_id: str
    ) -> None:
        """``@bananabot <prompt>``: references are this message's files, then the thread
        parent's images; a mention in the thread of a bananabot result edits that result.
        """
        text = strip_mention(str(event.get("text") or ""), bot_user_id)
        key = f"slack:msg:{place.channel}:{event['ts']}"
        parent = None
        thread = event.get("thread_ts")
        if isinstance(thread, str) and thread != event["ts"]:
            parent = await self._parent(place.channel, thread)
        ref = result_ref(parent.get("blocks") or []) if parent is not None else None
        if parent is not None and ref is not None and parent.get("bot_id") == bot_id:
            short = edit_too_short(text)
            if short is not None:
                await self.refuse(place.handle, short)
                return
            await self._act(place, JobAction.EDIT, ref, key, text)
            return
        own = [f for f in event.get("files") or () if isinstance(f, Mapping)]
        inherited = [
            f for f in (parent or {}).get("files") or () if isinstance(f, Mapping) and is_image(f)
        ]
        try:
            fields = imagine_fields(text)
            prevalidate(self._service.catalog, fields, pending_references=len(own) + len(inherited))
            references = await self._references([*own, *inherited])
            request, _ = prevalidate(self._service.catalog, fields, references)
            await self._precheck(place, request)
        except BananabotError as exc:
            await self.refuse(place.handle, exc)
            return

        async def submit(origin: Origin) -> Submitted:
            return await self._service.submit(request, origin, idempotency_key=key)

        await self._start(place, request.prompt, submit)

    async def _parent(self, channel: str, thread_ts: str) -> Mapping[str, Any] | None:
        try:
            response = await self._poster.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=1
            )
        except (SlackApiError, SlackClientError) as exc:
            log.info("thread parent not readable", extra={"error": api_error(exc)})
            return None
        messages = response.get("messages") or []
        first = messages[0] if messages else None
        return first if isinstance(first, Mapping) and first.get("ts") == thread_ts else None

    async def _references(self, files: Sequence[Mapping[str, Any]]) -> list[ReferenceImage]:
        references = []
        for index, file in enumerate(files):
            full = file
            if not file.get("url_private") and file.get("id"):
                full = await self._file_info(str(file["id"]), index)
            data = await self._files().fetch(full, index)
            references.append(await self._service.load_reference(data, index))
        return references

    async def _file_info(self, file_id: str, index: int) -> Mapping[str, Any]:
        try:
            response = await self._poster.client.files_info(file=file_id)
        except (SlackApiError, SlackClientError) as exc:
            error = api_error(exc)
            if error == "missing_scope":
                raise ReferenceImageError(
                    "the bananabot app lacks the files:read scope; a workspace admin must "
                    "add it and reinstall the app",
                    index,
                ) from exc
            raise ReferenceImageError(f"Slack did not share that file ({error})", index) from exc
        file = response.get("file")
        if not isinstance(file, Mapping):
            raise ReferenceImageError("Slack did not share that file", index)
        return file

    # --- buttons and the Edit modal ---------------------------------------------------------

    async def act(self, place: Place, ref: ActionRef, trigger_id: str) -> None:
        """Vary / Upscale 4K of a result: a child job with its own status message."""
        await self._act(place, ref.action, ref, f"slack:act:{trigger_id}", None)

    async def edit(self, place: Place, ref: EditRef, instruction: str, key: str) -> None:
        """The Edit modal's submit: a child job with ``instruction`` as the prompt."""
        target = ActionRef(JobAction.EDIT, ref.job_id, ref.index)
        await self._act(place, JobAction.EDIT, target, key, instruction)

    async def _act(
        self,
        place: Place,
        action: JobAction,
        ref: ActionRef,
        key: str,
        instruction: str | None,
    ) -> None:
        async def submit(origin: Origin) -> Submitted:
            return await self._service.act(
                action,
                ref.job_id,
                ref.index,
                origin,
                idempotency_key=key,
                instruction=instruction,
            )

        title = f"{_ACTION_TITLES[action]} of image {ref.index + 1}"
        if instruction:
            title = f"{title}: {instruction}"
        await self._start(place, title, submit)
