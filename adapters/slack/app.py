"""The bolt ``AsyncApp`` and its listeners: each one ``ack()``s, then hands the work to a
task the adapter owns.

Checks that need no I/O (flags, sizes, the Edit instruction) answer inside the ack itself
(a slash command's ephemeral reply, a modal's inline errors); everything else runs after it.
Slack redelivers: events after 3 s without a 2xx (``X-Slack-Retry-Num``), and one message
can arrive as both ``app_mention`` and ``message``. Listeners drop what they have seen
(event id, ``(channel, ts)``, ``trigger_id``, view id + hash); after a restart the core's
idempotency key (built from the same ids) still prevents a second job.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.middleware.request_verification.async_request_verification import (
    AsyncRequestVerification,
)
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.admin import Admin
from adapters.slack.blocks import edit_modal, error_text
from adapters.slack.flows import Flows, Place
from adapters.slack.outgoing import Poster, api_error
from adapters.slack.translate import (
    EDIT_CALLBACK,
    EDIT_INPUT_ACTION,
    EDIT_INPUT_BLOCK,
    USAGE,
    EditRef,
    edit_too_short,
    escape_mrkdwn,
    imagine_fields,
    mentions_bot,
    parse_action,
    parse_edit_metadata,
    prevalidate,
)
from bot.catalog import Catalog, ResolvedSize
from bot.errors import BananabotError
from bot.messages import render_error
from bot.models import ImageRequest
from bot.money import format_usd

__all__ = ["Listeners", "Seen", "TaskSet", "build_bolt_app"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
_MESSAGE_SUBTYPES: Final = frozenset({None, "file_share", "thread_broadcast"})


class Seen:
    """Keys seen recently (bounded, oldest forgotten first): the in-memory redelivery filter."""

    def __init__(self, size: int = 20_000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first(self, *keys: str) -> bool:
        """Record ``keys``; True if none of them was seen before."""
        new = not any(key in self._keys for key in keys)
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return new


class TaskSet:
    """Tasks the adapter owns: errors are logged, :meth:`close` cancels and awaits them.

    At most ``limit`` run at once; the rest wait their turn. A burst of commands is then
    acknowledged first and worked off after, instead of every ack waiting behind the
    follow-up work of all the others (Slack's ``chat.postMessage`` allows about one message
    per second per channel anyway).
    """

    def __init__(self, limit: int = 8) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(limit)

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str, urgent: bool = False) -> None:
        """Run ``coro`` in a task; ``urgent`` ones (``views.open``) skip the queue."""
        task = asyncio.get_running_loop().create_task(self._guard(coro, urgent), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, None], urgent: bool) -> None:
        try:
            async with contextlib.nullcontext() if urgent else self._limit:
                await coro
        except asyncio.CancelledError:
            coro.close()  # never started when cancelled while waiting for its turn
            raise
        except Exception:
            log.exception("Slack task failed")

    async def idle(self) -> None:
        """Wait until every task has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Verification(AsyncRequestVerification):
    """bolt's signature and 5-minute replay check (HTTP mode; Socket Mode has none), without
    logging the refused body (bolt logs it at INFO, with its ``response_url`` and the
    legacy verification token)."""

    def _debug_log_error(self, signature: str, timestamp: str, body: str) -> None:
        log.warning("Slack request refused: bad signature or stale timestamp")


class _App(AsyncApp):
    """bolt's app, holding requests back until the first one has been authorized: bolt
    calls ``auth.test`` on the first request and caches the answer, so a burst right after
    a start would otherwise call it once per request (and meet its rate limit)."""

    _authorized = False
    _first: asyncio.Lock | None = None

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if self._authorized:
            return await super().async_dispatch(req)
        if self._first is None:
            self._first = asyncio.Lock()
        async with self._first:
            response = await super().async_dispatch(req)
            self._authorized = req.context.authorize_result is not None
            return response


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _queued_note(catalog: Catalog, request: ImageRequest, size: ResolvedSize) -> str:
    estimate = format_usd(catalog.estimate_micros(request, size))
    return (
        f"⏳ Queued: *{escape_mrkdwn(request.prompt, 200)}* (up to {estimate}). "
        "Progress and the image will appear in this conversation."
    )


class Listeners:
    """The bolt listeners.

    Args:
        flows: what happens after each ack.
        admin: the admin commands.
        poster: Slack output (``views.open``, ``response_url``).
        catalog: the model catalog (validation inside the ack).
        tasks: where the work after an ack runs.
        on_ack: told each acknowledgement's latency, seconds from the listener's start.
    """

    def __init__(
        self,
        *,
        flows: Flows,
        admin: Admin,
        poster: Poster,
        catalog: Catalog,
        tasks: TaskSet,
        clock: Callable[[], float] = time.time,
        on_ack: Callable[[float], None] | None = None,
    ) -> None:
        self._on_ack = on_ack
        self._flows = flows
        self._admin = admin
        self._poster = poster
        self._catalog = catalog
        self._tasks = tasks
        self._clock = clock
        self.seen = Seen()

    def install(self, app: AsyncApp) -> None:
        timed = self._timed
        app.command("/imagine")(timed(self.imagine))
        app.command(re.compile(r"^/imagine-(budget|policy|usage)$"))(timed(self.admin_command))
        app.event("app_mention")(timed(self.on_mention))
        app.event("message")(timed(self.on_message))
        app.action(re.compile(r"^bb_(vary|upscale)$"))(timed(self.on_button))
        app.action("bb_edit")(timed(self.on_edit))
        app.view(EDIT_CALLBACK)(timed(self.on_edit_submit))

    def _timed(self, listener: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """``listener`` with its ``ack`` timed from the listener's start to the ack's return
        (reported to ``on_ack``, seconds). Bolt reads the argument names through
        ``__wrapped__``, so it injects the same arguments as before."""
        on_ack = self._on_ack
        if on_ack is None:
            return listener

        @functools.wraps(listener)
        async def timed(**kwargs: Any) -> None:
            started = time.monotonic()
            ack = kwargs.get("ack")
            if ack is not None:

                async def timed_ack(*args: Any, **options: Any) -> Any:
                    try:
                        return await ack(*args, **options)
                    finally:
                        on_ack(time.monotonic() - started)

                kwargs["ack"] = timed_ack
            await listener(**kwargs)

        return timed

    def _command_place(self, command: Mapping[str, Any]) -> Place:
        return Place(
            team_id=_str(command.get("team_id")),
            channel=_str(command.get("channel_id")),
            user=_str(command.get("user_id")),
            response_url=_str(command.get("response_url")) or None,
            response_at=self._clock(),
        )

    # --- slash commands -------------------------------------------------------------------

    async def imagine(self, ack: AsyncAck, command: JSON) -> None:
        """``/imagine``: flags and sizes are checked inside the ack; the rest runs after."""
        text = _str(command.get("text"))
        if not text.strip():
            await ack(text=USAGE, response_type="ephemeral")
            return
        try:
            fields = imagine_fields(text)
            request, size = prevalidate(self._catalog, fields)
            note = _queued_note(self._catalog, request, size)
        except BananabotError as exc:
            await ack(text=error_text(render_error(exc)), response_type="ephemeral")
            return
        trigger = _str(command.get("trigger_id")) or f"none-{uuid.uuid4().hex}"
        await ack(text=note, response_type="ephemeral")
        if not self._seen_first(f"cmd:{trigger}"):
            return  # a retry of a command already being handled
        place = self._command_place(command)
        self._tasks.spawn(self._flows.imagine(place, request, trigger), name="slack-imagine")

    async def admin_command(self, ack: AsyncAck, command: JSON) -> None:
        """``/imagine-budget``, ``/imagine-policy``, ``/imagine-usage``: answered ephemerally."""
        await ack()
        if not self._seen_first(f"cmd:{_str(command.get('trigger_id'))}"):
            return
        self._tasks.spawn(self._admin_answer(command), name="slack-admin")

    async def _admin_answer(self, command: JSON) -> None:
        place = self._command_place(command)
        name = _str(command.get("command")).removeprefix("/imagine-")
        text = _str(command.get("text"))
        answer = {"budget": self._admin.budget, "policy": self._admin.policy}.get(
            name, self._admin.usage
        )
        reply = await answer(place.team_id, place.handle, text)
        if not place.response_url or not await self._poster.respond(place.response_url, reply):
            await self._poster.ephemeral(place.handle, reply)

    # --- events ---------------------------------------------------------------------------

    async def on_mention(self, body: JSON, event: JSON, context: AsyncBoltContext) -> None:
        """``app_mention`` (bolt acks events itself, before the listener runs)."""
        if event.get("bot_id") or not event.get("user"):
            return
        self._event(body, event, context)

    async def on_message(self, body: JSON, event: JSON, context: AsyncBoltContext) -> None:
        """``message.*``: a mention (Slack may not send ``app_mention`` for file shares,
        bolt-python#925) or anything said to the bot in a direct message."""
        if event.get("subtype") not in _MESSAGE_SUBTYPES or event.get("bot_id"):
            return
        if not event.get("user"):
            return
        text = _str(event.get("text"))
        direct = event.get("channel_type") == "im"
        if not direct and not mentions_bot(text, _str(context.bot_user_id)):
            return
        self._event(body, event, context)

    def _event(self, body: JSON, event: JSON, context: AsyncBoltContext) -> None:
        channel, ts = _str(event.get("channel")), _str(event.get("ts"))
        if not self._seen_first(f"event:{_str(body.get('event_id'))}", f"msg:{channel}:{ts}"):
            return
        thread = _str(event.get("thread_ts")) or None
        direct = event.get("channel_type") == "im" or channel.startswith("D")
        place = Place(
            team_id=_str(body.get("team_id")) or _str(context.team_id),
            channel=channel,
            user=_str(event.get("user")),
            thread_ts=thread if direct else (thread or ts),
        )
        self._tasks.spawn(
            self._flows.mention(place, event, _str(context.bot_user_id), _str(context.bot_id)),
            name="slack-mention",
        )

    # --- buttons and the Edit modal -------------------------------------------------------

    def _click_place(self, body: JSON) -> Place:
        message = body.get("message") or {}
        container = body.get("container") or {}
        ts = _str(message.get("ts")) or _str(container.get("message_ts"))
        thread = _str(message.get("thread_ts")) or _str(container.get("thread_ts"))
        return Place(
            team_id=_str((body.get("team") or {}).get("id")),
            channel=_str((body.get("channel") or {}).get("id"))
            or _str(container.get("channel_id")),
            user=_str((body.get("user") or {}).get("id")),
            thread_ts=thread if thread and thread != ts else None,
            response_url=_str(body.get("response_url")) or None,
            response_at=self._clock(),
        )

    async def on_button(self, ack: AsyncAck, body: JSON, action: JSON) -> None:
        """Vary / Upscale 4K: the button's value names the job and image, nothing else."""
        await ack()
        ref = parse_action(_str(action.get("action_id")), _str(action.get("value")))
        trigger = _str(body.get("trigger_id")) or f"none-{uuid.uuid4().hex}"
        if ref is None or not self._seen_first(f"act:{trigger}"):
            return
        self._tasks.spawn(
            self._flows.act(self._click_place(body), ref, trigger), name="slack-action"
        )

    async def on_edit(self, ack: AsyncAck, body: JSON, action: JSON) -> None:
        """Edit: the modal opens straight after the ack (``trigger_id`` lives 3 s)."""
        await ack()
        ref = parse_action(_str(action.get("action_id")), _str(action.get("value")))
        if ref is None:
            return
        place = self._click_place(body)
        view = edit_modal(EditRef(ref.job_id, ref.index, place.channel, place.thread_ts))
        trigger = _str(body.get("trigger_id"))
        self._tasks.spawn(self._open(place, trigger, view), name="slack-modal", urgent=True)

    async def _open(self, place: Place, trigger_id: str, view: JSON) -> None:
        try:
            await self._poster.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            log.info("views.open refused", extra={"error": api_error(exc)})
            await self._flows.refuse(
                place.handle, "The edit form could not be opened in time; press Edit again."
            )

    async def on_edit_submit(self, ack: AsyncAck, body: JSON, view: JSON) -> None:
        """The Edit modal's submit: the instruction is checked inline, then a child job."""
        values = ((view.get("state") or {}).get("values") or {}).get(EDIT_INPUT_BLOCK) or {}
        instruction = _str((values.get(EDIT_INPUT_ACTION) or {}).get("value")).strip()
        ref = parse_edit_metadata(_str(view.get("private_metadata")))
        if ref is None:
            problem = "This form is out of date; press Edit on the image again."
            await ack(response_action="errors", errors={EDIT_INPUT_BLOCK: problem})
            return
        short = edit_too_short(instruction)
        if short is not None:
            await ack(response_action="errors", errors={EDIT_INPUT_BLOCK: render_error(short)})
            return
        await ack()
        key = f"slack:view:{_str(view.get('id'))}:{_str(view.get('hash'))}"
        if not self._seen_first(key):
            return
        place = Place(
            team_id=_str((body.get("team") or {}).get("id")),
            channel=ref.channel,
            user=_str((body.get("user") or {}).get("id")),
            thread_ts=ref.thread_ts,
        )
        self._tasks.spawn(self._flows.edit(place, ref, instruction, key), name="slack-edit")

    def _seen_first(self, *keys: str) -> bool:
        # A key without its id ("cmd:") would merge unrelated requests: not a key.
        return self.seen.first(*(key for key in keys if not key.endswith(":")))


def build_bolt_app(
    client: AsyncWebClient, signing_secret: str | None, listeners: Listeners
) -> AsyncApp:
    """The bolt app: the bot token inside ``client`` (bolt ignores ``token=`` next to a
    client), signatures checked in HTTP mode with a 5-minute replay window."""
    app = _App(
        # Every listener only acks and hands its work to a task, so running it inline
        # answers Slack as soon as it returns (no listener task, no 10 ms ack polling).
        process_before_response=True,
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=False,
        before_authorize=_Verification(signing_secret or ""),
        name="bananabot",
    )
    listeners.install(app)
    return app
