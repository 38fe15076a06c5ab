"""A local fake of Slack for the real slack-sdk ``AsyncWebClient`` and slack-bolt ``AsyncApp``.

``FakeSlack`` is an aiohttp app on 127.0.0.1 (port 0) serving

* the Web API under ``/api/<method>`` (``fake.api_url``, ends with ``/``): ``auth.test``,
  ``chat.postMessage|update|postEphemeral|delete|getPermalink``, ``reactions.add|remove``,
  ``files.getUploadURLExternal|completeUploadExternal|info``, ``views.open|update|push``,
  ``users.info``, ``conversations.info|replies|history``, ``apps.connections.open``;
  anything else answers ``unknown_method``.  Every request is recorded in ``fake.requests``.
* the upload URLs ``POST /upload/v1/<ticket>`` (step 2 of ``files_upload_v2``);
* ``url_private`` / ``url_private_download`` (``/files-pri/<team>-<file>/...``);
* ``response_url``s (``POST /response/<id>``: 5 uses within 30 minutes);
* the Socket Mode websocket (``/socket?ticket=...``; the URL comes from ``apps.connections.open``).

Pointing the libraries at it::

    async with FakeSlack() as fake:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        # HTTP mode: the app verifies the fake's signatures with fake.signing_secret
        app = AsyncApp(client=client, signing_secret=fake.signing_secret)
        resp = await fake.post_signed(app_url, fake.slash_command("/imagine", "a cat"))
        # Socket Mode: the handler's SocketModeClient calls apps.connections.open through
        # the same web client (app.client), then connects to the ws:// URL it returns.
        handler = AsyncSocketModeHandler(app, fake.app_token)
        await handler.connect_async()
        eid = await fake.socket_send("slash_commands", fake.slash_command_payload(text="x"))
        ack = await fake.wait_socket_ack(eid)
        await handler.close_async()

Don't pass ``token=`` *and* ``client=`` to ``AsyncApp``: bolt ignores ``token`` (with a
warning log) and, if the client has no token, raises ``BoltError``.  Put the bot token in
the client.  ``apps.connections.open`` is sent with the app token (slack-sdk moves the
``token`` parameter into the ``Authorization`` header).

Wire facts about slack-sdk 3.47 / slack-bolt 1.30 that the fake accommodates:

* ``params=`` methods (``auth.test``, ``files.getUploadURLExternal``,
  ``files.completeUploadExternal`` with ``files`` as a JSON string, ``apps.connections.open``)
  are POSTs with the arguments in the **query string**; ``chat.*`` and ``views.*`` send JSON;
  ``users.info`` / ``conversations.*`` / ``files.info`` are GETs.  ``RecordedRequest.params``
  merges all of them.
* The upload URL gets the raw bytes (``application/octet-stream``) through the client's
  own aiohttp session (no ``Authorization``); slack-sdk needs a 200 and reads ``text/plain``.
* ``chat_postMessage`` / ``chat_update`` ... without a top-level ``text`` emit a
  ``UserWarning`` (an error under ``filterwarnings = error``): always send ``text``.
* bolt (single-workspace ``authorize``) calls ``auth.test`` once, on the first request,
  and reads the scopes from the ``X-OAuth-Scopes`` response header.
* HTTP mode: bolt polls for ``ack()`` every 10 ms, so the listener's follow-up calls
  (``respond``, uploads) can reach Slack *before* the ack's HTTP response does.
* Socket Mode: an envelope nobody handles gets **no ack** (bolt answers 404 internally);
  ``retry_attempt`` becomes the ``x-slack-retry-num`` header even when it is 0; the client
  pings right after connecting and every ``ping_interval`` (``sdk-ping-pong:<time>``) and
  reconnects through a new ``apps.connections.open`` on ``disconnect`` or CLOSE.  A closed
  handler cannot reconnect: a restart is a new ``AsyncSocketModeHandler``.

Time: ``fake.clock()`` is ``time.monotonic()`` plus ``fake.clock.advance(s)`` /
``fake.advance_clock(s)``.  trigger_id expiry (3 s), response_url expiry (30 min) and the
"file is still processing" window after an upload (``file_ready_delay``) use it.  Request
signatures use the wall clock (``time.time()``), because bolt checks them against it.

State is Slack-shaped dicts: ``fake.messages_in(channel)``, ``fake.ephemeral_for(user)``,
``fake.views_opened``, ``fake.uploaded``, ``fake.response_urls``, ``fake.deliveries``
(HTTP-mode answers), ``fake.envelopes`` / ``fake.socket_acks`` (Socket Mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.parser
import email.policy
import json
import mimetypes
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType, web

from tests.fakes.slack_payloads import (
    LOGIN_PAGE,
    FakeChannel,
    FakeClock,
    FakeFile,
    FakeUser,
    Ids,
    RecordedPart,
    RecordedRequest,
    ResponsePost,
    ResponseUrl,
    SignedRequest,
    SignedResponse,
    Trigger,
    UploadedFile,
)
from tests.fakes.slack_rules import (
    REPLAY_WINDOW,
    ApiError,
    Issues,
    check_blocks,
    check_view,
    parse_blocks,
    sign,
)

__all__ = [
    "DEFAULT_SCOPES",
    "ApiError",
    "FakeChannel",
    "FakeClock",
    "FakeFile",
    "FakeSlack",
    "FakeUser",
    "Issues",
    "RecordedPart",
    "RecordedRequest",
    "ResponsePost",
    "ResponseUrl",
    "SignedRequest",
    "SignedResponse",
    "SocketAck",
    "SocketConnection",
    "SocketEnvelope",
    "Trigger",
    "UploadedFile",
]

JSON = dict[str, Any]
T = TypeVar("T")
EnvelopeType = Literal["slash_commands", "interactive", "events_api"]

DEFAULT_SCOPES: Final = frozenset(
    {
        "app_mentions:read",
        "channels:history",
        "channels:read",
        "chat:write",
        "commands",
        "files:read",
        "files:write",
        "groups:history",
        "groups:read",
        "im:history",
        "im:read",
        "mpim:history",
        "mpim:read",
        "reactions:write",
        "users:read",
    }
)
"""The bot scopes the fake grants unless told otherwise (no ``chat:write.public``)."""

_METHOD_SCOPES: Final[Mapping[str, str]] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.delete": "chat:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "files.info": "files:read",
    "users.info": "users:read",
}
_SLASH_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
_STALE_AGE: Final = REPLAY_WINDOW + 60


# ======================================================================================
# Socket Mode records
# ======================================================================================


@dataclass
class SocketAck:
    """An acknowledgement the app sent over the socket: ``{"envelope_id", "payload"?}``."""

    envelope_id: str
    payload: JSON | None
    at: float
    latency: float
    connection: int
    raw: str


@dataclass
class SocketEnvelope:
    """An envelope the fake sent (``fake.envelopes``)."""

    envelope_id: str
    type: str
    payload: JSON
    accepts_response_payload: bool
    connection: int
    sent_at: float
    ack: SocketAck | None = None

    @property
    def message(self) -> JSON:
        return {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
        }


class SocketConnection:
    """One Socket Mode websocket (``fake.socket_connections``, in connect order).

    Attributes:
        index: Position in ``fake.socket_connections``.
        query: The connect URL's query (``ticket``, ``app_id``, ``debug_reconnects``).
        sent / received: Every text frame (decoded JSON when possible), in order.
        pings / pongs: Websocket control frames received from the client (slack-sdk's
            aiohttp client pings every ``ping_interval`` with ``sdk-ping-pong:<time>``).
        close_code: Set when the socket ends.
    """

    def __init__(
        self, ws: web.WebSocketResponse, query: Mapping[str, str], index: int, at: float
    ) -> None:
        self.ws = ws
        self.query = dict(query)
        self.index = index
        self.opened_at = at
        self.sent: list[JSON] = []
        self.received: list[Any] = []
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.hello_sent = False
        self.closed = False
        self.close_code: int | None = None
        self._lock = asyncio.Lock()

    @property
    def live(self) -> bool:
        return self.hello_sent and not self.closed and not self.ws.closed

    async def send(self, message: JSON) -> None:
        async with self._lock:
            if self.closed or self.ws.closed:
                raise ConnectionResetError("socket mode connection closed")
            self.sent.append(message)
            await self.ws.send_str(json.dumps(message, separators=(",", ":")))

    def __repr__(self) -> str:
        state = "live" if self.live else f"closed({self.close_code})"
        return f"<SocketConnection #{self.index} {state}>"


@dataclass
class _Fault:
    method: str
    error: str
    status: int
    retry_after: float | None
    remaining: int
    extra: JSON = field(default_factory=dict)


# ======================================================================================
# The fake
# ======================================================================================


class FakeSlack:
    """A fake Slack workspace + Web API + Socket Mode server (see the module docstring).

    The default workspace: users ``fake.user`` (U0ALICE, a member), ``fake.admin`` (is_admin)
    and ``fake.owner`` (is_owner/is_primary_owner); channels ``fake.channel`` (#general,
    public, bot member), ``fake.random`` (#random, public, bot *not* a member),
    ``fake.private`` (#secret, private, bot member) and ``fake.dm`` (the bot's DM with alice).
    Add more with :meth:`add_user` / :meth:`add_channel`.

    Args:
        bot_token / app_token / signing_secret: What the app is configured with.
        scopes: Bot scopes (``fake.scopes`` is a mutable set; drop ``files:read`` to see
            ``url_private`` answer the HTML login page and ``files.info`` ``missing_scope``).
        file_ready_delay: Seconds (fake clock) after ``files.completeUploadExternal`` during
            which an image block referencing the file fails with ``invalid_blocks``. A file
            uploaded without a channel is private to the bot and always fails there.
        trigger_ttl: trigger_id lifetime (3 s).
        response_url_uses / response_url_ttl: 5 posts within 1800 s.
        share_delay: Seconds before an uploaded file's message appears in the channel
            (Slack shares asynchronously; 0 = immediately).
        debug_reconnects: Add ``debug_reconnects=true`` to socket URLs; such connections get
            a ``disconnect`` (``refresh_requested``) after ``debug_reconnect_after`` s.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-0000000001-fake-bot-token",
        app_token: str = "xapp-1-A0FAKEAPP-0000000001-fake-app-token",
        signing_secret: str = "fake-signing-secret-0123456789abcdef",
        verification_token: str = "fake-verification-token",
        team_id: str = "T0FAKE001",
        team_name: str = "Fake Workspace",
        team_domain: str = "fakeworkspace",
        app_id: str = "A0FAKEAPP",
        bot_id: str = "B0FAKEBOT",
        bot_user_id: str = "U0FAKEBOT",
        bot_name: str = "bananabot",
        scopes: Iterable[str] | None = None,
        file_ready_delay: float = 0.5,
        trigger_ttl: float = 3.0,
        response_url_uses: int = 5,
        response_url_ttl: float = 30 * 60.0,
        share_delay: float = 0.0,
        debug_reconnects: bool = False,
        debug_reconnect_after: float = 360.0,
        max_upload_size: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.app_id = app_id
        self.bot_id = bot_id
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        self.scopes: set[str] = set(DEFAULT_SCOPES if scopes is None else scopes)
        self.file_ready_delay = file_ready_delay
        self.trigger_ttl = trigger_ttl
        self.response_url_uses = response_url_uses
        self.response_url_ttl = response_url_ttl
        self.share_delay = share_delay
        self.debug_reconnects = debug_reconnects
        self.debug_reconnect_after = debug_reconnect_after
        self.max_upload_size = max_upload_size
        self.host = host
        self.port = port
        self.clock = FakeClock()

        # Workspace.
        self.users: dict[str, FakeUser] = {}
        self.channels: dict[str, FakeChannel] = {}
        self.bot_user = self.add_user(
            bot_user_id, bot_name, is_bot=True, bot_id=bot_id, real_name="Banana Bot"
        )
        self.user = self.add_user("U0ALICE", "alice", real_name="Alice Member")
        self.admin = self.add_user("U0ADMIN", "ada", real_name="Ada Admin", is_admin=True)
        self.owner = self.add_user(
            "U0OWNER",
            "olga",
            real_name="Olga Owner",
            is_admin=True,
            is_owner=True,
            is_primary_owner=True,
        )
        humans = [self.user.id, self.admin.id, self.owner.id]
        self.channel = self.add_channel("C0GENERAL", "general", members=humans)
        self.random = self.add_channel("C0RANDOM", "random", members=humans, bot_member=False)
        self.private = self.add_channel(
            "G0SECRET", "secret", is_private=True, members=[self.user.id, self.admin.id]
        )
        self.dm = self.dm_with(self.user.id)

        # Records and state.
        self.requests: list[RecordedRequest] = []
        self.files: dict[str, FakeFile] = {}
        self.uploaded: list[UploadedFile] = []
        self.triggers: dict[str, Trigger] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.views: dict[str, JSON] = {}
        self.views_opened: list[JSON] = []
        self.views_updated: list[JSON] = []
        self.deliveries: list[SignedResponse] = []
        self.socket_connections: list[SocketConnection] = []
        self.envelopes: dict[str, SocketEnvelope] = {}
        self.socket_acks: list[SocketAck] = []
        self.unknown_socket_messages: list[Any] = []
        self.socket_tickets: dict[str, float] = {}
        self._messages: dict[str, list[JSON]] = {}
        self._ephemeral: list[JSON] = []
        self._uploads_by_token: dict[str, str] = {}
        self._faults: list[_Fault] = []
        self._ids = Ids()
        self._last_ts = 0
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._handlers: dict[str, Callable[[RecordedRequest], Awaitable[JSON]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "apps.connections.open": self._apps_connections_open,
            "files.upload": self._files_upload_v1,
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._changed = asyncio.Event()
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api_handler)
        app.router.add_post("/upload/v1/{ticket}", self._upload_handler)
        app.router.add_get("/files-pri/{ref}/download/{name}", self._file_handler)
        app.router.add_get("/files-pri/{ref}/{name}", self._file_handler)
        app.router.add_post("/response/{id}", self._response_url_handler)
        app.router.add_get("/socket", self._socket_handler)
        app.router.add_get("/link/", self._socket_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.socket_connections:
            if not conn.ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await conn.ws.close(code=1001, message=b"server shutting down")
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/`` (trailing slash: slack-sdk ``urljoin``s method names)."""
        return f"{self.base_url}/api/"

    def advance_clock(self, seconds: float) -> None:
        """Ages trigger_ids, response_urls and uploads without sleeping (``clock.advance``)."""
        self.clock.advance(seconds)
        self._touch()

    # ------------------------------------------------------------------ workspace setup

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str = "",
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        is_bot: bool = False,
        bot_id: str | None = None,
        tz: str = "Europe/Berlin",
        tz_offset: int = 7200,
    ) -> FakeUser:
        user = FakeUser(
            id=user_id,
            name=name,
            real_name=real_name,
            is_admin=is_admin,
            is_owner=is_owner,
            is_primary_owner=is_primary_owner,
            is_bot=is_bot,
            bot_id=bot_id,
            tz=tz,
            tz_offset=tz_offset,
        )
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_private: bool = False,
        is_mpim: bool = False,
        members: Iterable[str] = (),
        bot_member: bool = True,
        is_archived: bool = False,
    ) -> FakeChannel:
        channel = FakeChannel(
            id=channel_id,
            name=name,
            is_private=is_private or is_mpim,
            is_mpim=is_mpim,
            is_archived=is_archived,
            members=set(members),
            bot_member=bot_member,
            creator=next(iter(members), ""),
        )
        self.channels[channel_id] = channel
        return channel

    def dm_with(self, user_id: str) -> FakeChannel:
        """The bot's DM channel with a user (``D`` + user id without its ``U``)."""
        dm_id = "D" + user_id.removeprefix("U")
        if dm_id not in self.channels:
            self.channels[dm_id] = FakeChannel(
                id=dm_id, name=dm_id, is_private=True, is_im=True, members={user_id}, user=user_id
            )
        return self.channels[dm_id]

    def add_file(
        self,
        data: bytes,
        name: str,
        mimetype: str | None = None,
        *,
        user: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
        title: str | None = None,
        text: str = "",
    ) -> JSON:
        """Registers a user's file (served at ``url_private*``) and returns its file object.

        With ``channel``, the user also shares it there: a ``file_share`` message is stored
        (in ``thread_ts``'s thread if given) and the returned object has ``shares``.  Put
        the object (or its id) in :meth:`user_message` / :meth:`app_mention` to send it
        in an event.
        """
        mime = mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        file = FakeFile(
            id=self._ids.next("F"),
            name=name,
            title=title or name,
            mimetype=mime,
            filetype=_filetype(name, mime),
            data=data,
            user=user or self.user.id,
            team_id=self.team_id,
            base_url=self.base_url,
            created=int(time.time()),
            ready_at=self.clock(),
        )
        self.files[file.id] = file
        if channel is not None:
            self._store_message(
                self._channel(channel),
                user=file.user,
                text=text,
                thread_ts=thread_ts,
                files=[file],
                subtype="file_share",
            )
        self._touch()
        return file.to_api()

    def file_bytes(self, file: Mapping[str, Any] | str) -> bytes:
        file_id = file if isinstance(file, str) else str(file["id"])
        return self.files[file_id].data

    # ------------------------------------------------------------------ state queries

    def messages_in(self, channel: str, *, thread_ts: str | None = None) -> list[JSON]:
        """Messages stored in a channel, oldest first (a thread's parent + replies if given)."""
        messages = self._messages.get(channel, [])
        if thread_ts is None:
            return list(messages)
        return [m for m in messages if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def message(self, channel: str, ts: str) -> JSON | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def bot_messages(self, channel: str) -> list[JSON]:
        return [m for m in self.messages_in(channel) if m.get("bot_id") == self.bot_id]

    def ephemeral_for(self, user: str, channel: str | None = None) -> list[JSON]:
        """Ephemeral messages shown to ``user`` (``chat.postEphemeral``, response_url, acks).

        Each: ``{"user", "channel", "text", "blocks", "thread_ts", "ts", "source"}`` with
        ``source`` one of ``chat.postEphemeral``, ``response_url``, ``ack``.
        """
        return [
            e
            for e in self._ephemeral
            if e["user"] == user and (channel is None or e["channel"] == channel)
        ]

    @property
    def ephemeral(self) -> list[JSON]:
        return list(self._ephemeral)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded requests for one API method (or ``upload`` / ``file`` / ``response_url``)."""
        return [r for r in self.requests if r.method == method]

    def mark(self) -> int:
        """Current number of recorded requests (for ``since=`` in :meth:`wait_for_request`)."""
        return len(self.requests)

    # ------------------------------------------------------------------ waiting

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "a condition"
    ) -> T:
        """Waits until ``predicate()`` returns something truthy and returns it.

        Re-checked on every change the fake records (and every 50 ms, for clock-based
        conditions).  Raises ``TimeoutError`` naming ``what``.
        """
        assert self._changed is not None, "FakeSlack is not started"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"FakeSlack: timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_for_request(
        self,
        match: str | Callable[[RecordedRequest], bool],
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> RecordedRequest:
        """First recorded request (index >= ``since``) for a method name or matching a predicate."""

        def pred(r: RecordedRequest) -> bool:
            return r.method == match if isinstance(match, str) else match(r)

        return await self.wait_for(
            lambda: next((r for r in self.requests[since:] if pred(r) and r.status), None),
            timeout,
            f"a request {match!r}",
        )

    async def wait_for_message(
        self,
        channel: str,
        predicate: Callable[[JSON], bool] = lambda m: True,
        timeout: float = 5.0,
        *,
        thread_ts: str | None = None,
    ) -> JSON:
        return await self.wait_for(
            lambda: next(
                (m for m in self.messages_in(channel, thread_ts=thread_ts) if predicate(m)), None
            ),
            timeout,
            f"a message in {channel}",
        )

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int = 200,
        retry_after: float | None = None,
        count: int = 1,
        **extra: Any,
    ) -> None:
        """The next ``count`` calls of ``method`` answer ``{"ok": false, "error": error}``.

        ``method`` is an API method name, or ``upload`` / ``file`` / ``response_url``.  Use
        ``status=429, retry_after=1`` for a rate limit (Slack's only non-200 Web API answer).
        """
        self._faults.append(_Fault(method, error, status, retry_after, count, dict(extra)))

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ HTTP plumbing

    async def _record(self, request: web.Request, method: str) -> RecordedRequest:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        form: dict[str, str] = {}
        body_json: Any = None
        parts: list[RecordedPart] = []
        if raw and ctype.startswith("application/json"):
            with contextlib.suppress(ValueError):
                body_json = json.loads(raw)
        elif raw and ctype.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        elif raw and ctype.startswith("multipart/form-data"):
            parts = _parse_multipart(ctype, raw)
            form = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}
            parts = [p for p in parts if p.filename is not None]
        token: str | None = None
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        elif "token" in form:
            token = form["token"]
        elif isinstance(body_json, dict) and isinstance(body_json.get("token"), str):
            token = body_json["token"]
        elif "token" in request.query:
            token = request.query["token"]
        rec = RecordedRequest(
            method=method,
            http_method=request.method,
            path=request.path,
            query=dict(request.query),
            form=form,
            json=body_json,
            headers=dict(request.headers),
            files=parts,
            raw=raw,
            token=token,
            at=self.clock(),
        )
        self.requests.append(rec)
        return rec

    def _json_response(
        self,
        rec: RecordedRequest,
        body: JSON,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        accepted_scope: str = "",
    ) -> web.Response:
        rec.status, rec.response = status, body
        self._touch()
        all_headers = {
            "X-OAuth-Scopes": ",".join(sorted(self.scopes)),
            "X-Accepted-OAuth-Scopes": accepted_scope,
            **(headers or {}),
        }
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            charset="utf-8",
            headers=all_headers,
        )

    def _text_response(
        self,
        rec: RecordedRequest,
        text: str,
        *,
        status: int = 200,
        content_type: str = "text/plain",
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        rec.status, rec.response = status, text
        self._touch()
        return web.Response(
            status=status, text=text, content_type=content_type, charset="utf-8", headers=headers
        )

    def _fault_response(self, rec: RecordedRequest, fault: _Fault) -> web.Response:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after))
        body = {"ok": False, "error": fault.error, **fault.extra}
        return self._json_response(rec, body, status=fault.status, headers=headers)

    async def _api_handler(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        rec = await self._record(request, method)
        fault = self._take_fault(method)
        if fault is not None:
            return self._fault_response(rec, fault)
        handler = self._handlers.get(method)
        scope = _METHOD_SCOPES.get(method, "")
        try:
            if handler is None:
                raise ApiError("unknown_method", req_method=method)
            self._check_token(rec, app_level=method == "apps.connections.open")
            if scope and scope not in self.scopes:
                raise ApiError(
                    "missing_scope", needed=scope, provided=",".join(sorted(self.scopes))
                )
            body = await handler(rec)
        except ApiError as err:
            return self._json_response(
                rec, err.body(), status=err.status, headers=err.headers, accepted_scope=scope
            )
        return self._json_response(rec, body, accepted_scope=scope)

    def _check_token(self, rec: RecordedRequest, *, app_level: bool) -> None:
        token = rec.token
        if not token:
            raise ApiError("not_authed")
        expected = self.app_token if app_level else self.bot_token
        if token == expected:
            return
        if token in (self.app_token, self.bot_token):
            raise ApiError("not_allowed_token_type")
        raise ApiError("invalid_auth")

    # ------------------------------------------------------------------ helpers

    def _next_ts(self) -> str:
        now = int(time.time() * 1_000_000)
        self._last_ts = max(now, self._last_ts + 1)
        return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    def _channel(self, channel_id: Any, *, error: str = "channel_not_found") -> FakeChannel:
        if not isinstance(channel_id, str) or not channel_id:
            raise ApiError(error)
        if channel_id in self.channels:
            return self.channels[channel_id]
        if channel_id.startswith(("U", "W")) and channel_id in self.users:
            return self.dm_with(channel_id)
        raise ApiError(error)

    def _writable(self, channel: FakeChannel) -> None:
        if channel.is_archived:
            raise ApiError("is_archived")
        if channel.bot_member or channel.is_im:
            return
        if not channel.is_private and "chat:write.public" in self.scopes:
            return
        raise ApiError("not_in_channel")

    def _history_scope(self, channel: FakeChannel, kind: str) -> None:
        prefix = {"channel": "channels", "group": "groups", "im": "im", "mpim": "mpim"}
        needed = f"{prefix[channel.channel_type]}:{kind}"
        if needed not in self.scopes:
            raise ApiError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))

    def _file_problem(self, ref: Mapping[str, Any]) -> str | None:
        file: FakeFile | None = None
        if "id" in ref:
            file = self.files.get(str(ref["id"]))
        else:
            url = str(ref.get("url", ""))
            file = next(
                (
                    f
                    for f in self.files.values()
                    if url in (f.url_private, f.url_private_download, f.permalink)
                ),
                None,
            )
        if file is None or not file.uploaded or not file.completed:
            return "invalid slack file"
        if not file.is_image:
            return "invalid slack file (not an image)"
        if not file.shares and not any(u.id == file.id and u.channel for u in self.uploaded):
            # Uploaded (or added) without a channel: private to its owner, so an image block
            # cannot show it (platforms.md 8.2). An upload naming a channel counts at once,
            # even while its share message is still pending (``share_delay``).
            return "invalid slack file (the file is not shared in any channel)"
        if self.clock() < file.ready_at:
            return "invalid slack file (the file is still being processed)"
        return None

    def _blocks_arg(self, params: Mapping[str, Any], *, required: bool = False) -> list[Any] | None:
        raw = params.get("blocks")
        if raw is None or raw == "":
            if required:
                raise ApiError("invalid_blocks")
            return None
        blocks = parse_blocks(raw)
        issues = check_blocks(blocks, files=self._file_problem)
        if issues:
            raise issues.api_error("invalid_blocks")
        return _with_block_ids(blocks)

    def _bot_author(self) -> JSON:
        return {
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
            },
        }

    def _store_message(
        self,
        channel: FakeChannel,
        *,
        user: str | None = None,
        text: str = "",
        blocks: list[Any] | None = None,
        thread_ts: str | None = None,
        files: Sequence[FakeFile] = (),
        subtype: str | None = None,
        reply_broadcast: bool = False,
    ) -> JSON:
        ts = self._next_ts()
        msg: JSON = {"type": "message", "ts": ts, "text": text or "", "team": self.team_id}
        if subtype:
            msg["subtype"] = subtype
        if user is None:
            msg.update(self._bot_author())
        else:
            msg["user"] = user
        if blocks:
            msg["blocks"] = blocks
        parent = self.message(channel.id, thread_ts) if thread_ts else None
        if thread_ts:
            msg["thread_ts"] = thread_ts
            if parent is not None:
                msg["parent_user_id"] = parent.get("user")
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
                users = parent.setdefault("reply_users", [])
                author = msg.get("user")
                if author not in users:
                    users.append(author)
                parent["reply_users_count"] = len(users)
                parent["latest_reply"] = ts
            if reply_broadcast:
                msg["subtype"] = "thread_broadcast"
        if files:
            kind = "private" if channel.is_private else "public"
            for f in files:
                share: JSON = {"ts": ts, "channel_name": channel.name, "team_id": self.team_id}
                if thread_ts:
                    share["thread_ts"] = thread_ts
                f.shares.setdefault(kind, {}).setdefault(channel.id, []).append(share)
            msg["files"] = [f.to_api() for f in files]
            msg["upload"] = True
            msg["display_as_bot"] = False
        self._messages.setdefault(channel.id, []).append(msg)
        self._touch()
        return msg

    def _add_ephemeral(
        self,
        *,
        user: str,
        channel: str | None,
        text: str,
        blocks: Any,
        thread_ts: str | None,
        source: str,
    ) -> JSON:
        entry: JSON = {
            "type": "message",
            "subtype": "ephemeral",
            "user": user,
            "channel": channel,
            "text": text,
            "blocks": blocks,
            "thread_ts": thread_ts,
            "ts": self._next_ts(),
            "source": source,
        }
        self._ephemeral.append(entry)
        self._touch()
        return entry

    # ------------------------------------------------------------------ Web API methods

    async def _auth_test(self, rec: RecordedRequest) -> JSON:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _chat_post_message(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        channel = self._channel(p.get("channel"))
        self._writable(channel)
        blocks = self._blocks_arg(p)
        text = str(p.get("text") or "")
        if not text and not blocks and not p.get("attachments"):
            raise ApiError("no_text")
        if len(text) > 40_000:
            raise ApiError("msg_too_long")
        thread_ts = _opt_str(p.get("thread_ts"))
        broadcast = str(p.get("reply_broadcast", "")).lower() in ("1", "true")
        msg = self._store_message(
            channel, text=text, blocks=blocks, thread_ts=thread_ts, reply_broadcast=broadcast
        )
        return {"ok": True, "channel": channel.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    async def _chat_update(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        channel = self._channel(p.get("channel"))
        msg = self.message(channel.id, str(p.get("ts", "")))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise ApiError("cant_update_message")
        blocks = self._blocks_arg(p)
        if "text" in p:
            msg["text"] = str(p.get("text") or "")
        if blocks is not None:
            msg["blocks"] = blocks
        elif "blocks" in p:
            msg.pop("blocks", None)
        if not msg["text"] and not msg.get("blocks"):
            raise ApiError("no_text")
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self._touch()
        return {
            "ok": True,
            "channel": channel.id,
            "ts": msg["ts"],
            "text": msg["text"],
            "message": copy.deepcopy(msg),
        }

    async def _chat_post_ephemeral(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        channel = self._channel(p.get("channel"))
        self._writable(channel)
        user = str(p.get("user") or "")
        if user not in channel.members:
            raise ApiError("user_not_in_channel")
        blocks = self._blocks_arg(p)
        text = str(p.get("text") or "")
        if not text and not blocks and not p.get("attachments"):
            raise ApiError("no_text")
        entry = self._add_ephemeral(
            user=user,
            channel=channel.id,
            text=text,
            blocks=blocks,
            thread_ts=_opt_str(p.get("thread_ts")),
            source="chat.postEphemeral",
        )
        return {"ok": True, "message_ts": entry["ts"]}

    async def _chat_delete(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        channel = self._channel(p.get("channel"))
        msg = self.message(channel.id, str(p.get("ts", "")))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise ApiError("cant_delete_message")
        self._messages[channel.id].remove(msg)
        self._touch()
        return {"ok": True, "channel": channel.id, "ts": msg["ts"]}

    async def _chat_get_permalink(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        channel = self._channel(p.get("channel"))
        ts = str(p.get("message_ts", ""))
        if self.message(channel.id, ts) is None:
            raise ApiError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    def _reaction_target(self, rec: RecordedRequest) -> tuple[JSON, str]:
        p = rec.params
        channel = self._channel(p.get("channel"))
        msg = self.message(channel.id, str(p.get("timestamp", "")))
        if msg is None:
            raise ApiError("message_not_found")
        name = str(p.get("name") or "").strip(":")
        if not name:
            raise ApiError("invalid_name")
        return msg, name

    async def _reactions_add(self, rec: RecordedRequest) -> JSON:
        msg, name = self._reaction_target(rec)
        reactions: list[JSON] = msg.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if self.bot_user_id in entry["users"]:
            raise ApiError("already_reacted")
        entry["users"].append(self.bot_user_id)
        entry["count"] += 1
        self._touch()
        return {"ok": True}

    async def _reactions_remove(self, rec: RecordedRequest) -> JSON:
        msg, name = self._reaction_target(rec)
        reactions: list[JSON] = msg.get("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None or self.bot_user_id not in entry["users"]:
            raise ApiError("no_reaction")
        entry["users"].remove(self.bot_user_id)
        entry["count"] -= 1
        if not entry["users"]:
            reactions.remove(entry)
        if not reactions:
            msg.pop("reactions", None)
        self._touch()
        return {"ok": True}

    async def _files_get_upload_url(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        filename = p.get("filename")
        if not isinstance(filename, str) or not filename:
            raise ApiError("invalid_arguments")
        try:
            length = int(p.get("length", 0))
        except (TypeError, ValueError):
            raise ApiError("invalid_arguments") from None
        if length <= 0:
            raise ApiError("missing_argument")
        if self.max_upload_size is not None and length > self.max_upload_size:
            raise ApiError("file_upload_size_restricted")
        alt_txt = _opt_str(p.get("alt_txt"))
        if alt_txt is not None and len(alt_txt) > 1000:
            raise ApiError("alt_txt_too_large")
        ticket = secrets.token_urlsafe(18)
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        file = FakeFile(
            id=self._ids.next("F"),
            name=filename,
            title=filename,
            mimetype=mime,
            filetype=_filetype(filename, mime),
            data=b"",
            user=self.bot_user_id,
            team_id=self.team_id,
            base_url=self.base_url,
            created=int(time.time()),
            ready_at=float("inf"),
            by_bot=True,
            alt_txt=alt_txt,
            expected_length=length,
            upload_token=ticket,
            uploaded=False,
            completed=False,
        )
        self.files[file.id] = file
        self._uploads_by_token[ticket] = file.id
        return {
            "ok": True,
            "upload_url": f"{self.base_url}/upload/v1/{ticket}",
            "file_id": file.id,
        }

    async def _upload_handler(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, "upload")
        fault = self._take_fault("upload")
        if fault is not None:
            return self._text_response(rec, fault.error, status=fault.status or 500)
        file_id = self._uploads_by_token.get(request.match_info["ticket"])
        file = self.files.get(file_id or "")
        if file is None or file.completed:
            return self._text_response(rec, "upload_url_not_found", status=404)
        data = rec.files[0].data if rec.files else rec.raw
        if len(data) != file.expected_length:
            return self._text_response(
                rec,
                f"length_mismatch: expected {file.expected_length}, got {len(data)}",
                status=400,
            )
        file.data = data
        file.uploaded = True
        return self._text_response(rec, f"OK - {len(data)}")

    async def _files_complete_upload(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        raw_files = p.get("files")
        if isinstance(raw_files, str):
            try:
                raw_files = json.loads(raw_files)
            except ValueError:
                raise ApiError("invalid_arguments") from None
        if not isinstance(raw_files, list) or not raw_files:
            raise ApiError("invalid_arguments")
        entries: list[tuple[FakeFile, JSON]] = []
        for item in raw_files:
            if not isinstance(item, Mapping):
                raise ApiError("invalid_arguments")
            file = self.files.get(str(item.get("id", "")))
            if file is None or not file.by_bot or not file.uploaded or file.completed:
                raise ApiError("file_not_found")
            entries.append((file, dict(item)))
        channel_ids: list[str] = []
        if p.get("channel_id"):
            channel_ids.append(str(p["channel_id"]))
        if p.get("channels"):
            channel_ids.extend(c for c in str(p["channels"]).split(",") if c)
        channels = [self._channel(c, error="invalid_channel") for c in channel_ids]
        for channel in channels:
            self._writable(channel)
        thread_ts = _opt_str(p.get("thread_ts"))
        initial_comment = _opt_str(p.get("initial_comment"))
        blocks = self._blocks_arg(p)
        now = self.clock()
        files: list[FakeFile] = []
        for file, item in entries:
            if item.get("title"):
                file.title = str(item["title"])
            file.completed = True
            file.ready_at = now + self.file_ready_delay
            files.append(file)
            targets: list[str | None] = list(channel_ids) or [None]
            for channel_id in targets:
                self.uploaded.append(
                    UploadedFile(
                        id=file.id,
                        name=file.name,
                        title=file.title,
                        data=file.data,
                        mimetype=file.mimetype,
                        channel=channel_id,
                        thread_ts=thread_ts,
                        initial_comment=initial_comment,
                        alt_txt=file.alt_txt,
                        at=now,
                    )
                )
        answer = {"ok": True, "files": [f.to_api() for f in files]}

        def share() -> None:
            for channel in channels:
                self._store_message(
                    channel,
                    text=initial_comment or "",
                    blocks=blocks,
                    thread_ts=thread_ts,
                    files=files,
                )

        if channels and self.share_delay > 0:
            self._timers.append(asyncio.get_running_loop().call_later(self.share_delay, share))
        else:
            share()
        return answer

    async def _files_upload_v1(self, rec: RecordedRequest) -> JSON:
        # Retired for every app on 2025-11-12; use files_upload_v2.
        raise ApiError("method_deprecated")

    async def _files_info(self, rec: RecordedRequest) -> JSON:
        file = self.files.get(str(rec.params.get("file", "")))
        if file is None or not file.completed:
            raise ApiError("file_not_found")
        return {
            "ok": True,
            "file": file.to_api(),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _view_arg(self, params: Mapping[str, Any]) -> JSON:
        raw = params.get("view")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ApiError("invalid_arguments") from None
        if not isinstance(raw, dict):
            raise ApiError("invalid_arguments")
        issues = check_view(raw, files=self._file_problem)
        if issues:
            raise issues.api_error("invalid_arguments")
        return raw

    def _exchange_trigger(self, params: Mapping[str, Any]) -> Trigger:
        trigger = self.triggers.get(str(params.get("trigger_id", "")))
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.exchanged_at is not None:
            raise ApiError("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > self.trigger_ttl:
            raise ApiError("expired_trigger_id")
        return trigger

    def _render_view(self, view: Mapping[str, Any], view_id: str, root: str | None) -> JSON:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type", "modal"),
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": _with_block_ids(list(view.get("blocks", []))),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": root or view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    async def _views_open(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        trigger = self._exchange_trigger(p)
        view = self._view_arg(p)
        external_id = view.get("external_id")
        if external_id and any(v.get("external_id") == external_id for v in self.views.values()):
            raise ApiError("duplicate_external_id")
        trigger.exchanged_at = self.clock()
        rendered = self._render_view(view, self._ids.next("V"), None)
        rendered["user_id"] = trigger.user_id
        self.views[rendered["id"]] = rendered
        self.views_opened.append(rendered)
        return {"ok": True, "view": _public_view(rendered)}

    async def _views_push(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        trigger = self._exchange_trigger(p)
        view = self._view_arg(p)
        trigger.exchanged_at = self.clock()
        root = next(
            (v for v in reversed(self.views_opened) if v.get("user_id") == trigger.user_id), None
        )
        rendered = self._render_view(view, self._ids.next("V"), root["id"] if root else None)
        rendered["previous_view_id"] = root["id"] if root else None
        rendered["user_id"] = trigger.user_id
        self.views[rendered["id"]] = rendered
        self.views_opened.append(rendered)
        return {"ok": True, "view": _public_view(rendered)}

    async def _views_update(self, rec: RecordedRequest) -> JSON:
        p = rec.params
        view_id, external_id = p.get("view_id"), p.get("external_id")
        current: JSON | None = None
        if view_id:
            current = self.views.get(str(view_id))
        elif external_id:
            current = next(
                (v for v in self.views.values() if v.get("external_id") == external_id), None
            )
        else:
            raise ApiError("invalid_arguments")
        if current is None:
            raise ApiError("not_found")
        if p.get("hash") and p["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        view = self._view_arg(p)
        rendered = self._render_view(view, current["id"], current["root_view_id"])
        rendered["user_id"] = current.get("user_id")
        rendered["previous_view_id"] = current.get("previous_view_id")
        self.views[current["id"]] = rendered
        self.views_updated.append(rendered)
        return {"ok": True, "view": _public_view(rendered)}

    async def _users_info(self, rec: RecordedRequest) -> JSON:
        user = self.users.get(str(rec.params.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        return {"ok": True, "user": user.to_api(self.team_id)}

    async def _conversations_info(self, rec: RecordedRequest) -> JSON:
        channel = self._channel(rec.params.get("channel"))
        self._history_scope(channel, "read")
        return {"ok": True, "channel": channel.to_api()}

    def _readable(self, rec: RecordedRequest) -> FakeChannel:
        channel = self._channel(rec.params.get("channel"))
        self._history_scope(channel, "history")
        if not channel.bot_member and not channel.is_im:
            raise ApiError("not_in_channel")
        return channel

    async def _conversations_replies(self, rec: RecordedRequest) -> JSON:
        channel = self._readable(rec)
        ts = str(rec.params.get("ts", ""))
        if self.message(channel.id, ts) is None:
            raise ApiError("thread_not_found")
        messages = self.messages_in(channel.id, thread_ts=ts)
        limit = int(rec.params.get("limit") or 1000)
        return {
            "ok": True,
            "messages": copy.deepcopy(messages[:limit]),
            "has_more": len(messages) > limit,
            "response_metadata": {"next_cursor": ""},
        }

    async def _conversations_history(self, rec: RecordedRequest) -> JSON:
        channel = self._readable(rec)
        p = rec.params
        latest = float(p.get("latest") or "inf")
        oldest = float(p.get("oldest") or 0)
        top = [
            m
            for m in self._messages.get(channel.id, [])
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        top = [m for m in reversed(top) if oldest <= float(m["ts"]) <= latest]
        limit = int(p.get("limit") or 100)
        return {
            "ok": True,
            "messages": copy.deepcopy(top[:limit]),
            "has_more": len(top) > limit,
            "pin_count": 0,
            "response_metadata": {"next_cursor": ""},
        }

    async def _apps_connections_open(self, rec: RecordedRequest) -> JSON:
        ticket = str(uuid.uuid4())
        self.socket_tickets[ticket] = self.clock()
        query = {"ticket": ticket, "app_id": self.app_id}
        if self.debug_reconnects:
            query["debug_reconnects"] = "true"
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/socket?{urlencode(query)}"}

    # ------------------------------------------------------------------ url_private

    async def _file_handler(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, "file")
        fault = self._take_fault("file")
        if fault is not None:
            return self._text_response(rec, fault.error, status=fault.status or 500)
        file_id = request.match_info["ref"].removeprefix(f"{self.team_id}-")
        file = self.files.get(file_id)
        if file is None or not file.uploaded:
            return self._text_response(rec, "file not found", status=404)
        if rec.token != self.bot_token or "files:read" not in self.scopes:
            # Slack answers 200 with its sign-in page, not 401/403.
            return self._text_response(rec, LOGIN_PAGE, content_type="text/html")
        rec.status, rec.response = 200, f"<{len(file.data)} bytes>"
        self._touch()
        headers = {"Content-Length": str(len(file.data))}
        if "/download/" in request.path:
            headers["Content-Disposition"] = f'attachment; filename="{file.name}"'
        return web.Response(body=file.data, content_type=file.mimetype, headers=headers)

    # ------------------------------------------------------------------ response_url

    def issue_response_url(
        self,
        kind: str,
        user_id: str,
        channel_id: str | None,
        message_ts: str | None = None,
    ) -> str:
        url_id = secrets.token_hex(8)
        url = f"{self.base_url}/response/{url_id}"
        self.response_urls[url_id] = ResponseUrl(
            id=url_id,
            url=url,
            kind=kind,
            user_id=user_id,
            channel_id=channel_id,
            issued_at=self.clock(),
            message_ts=message_ts,
        )
        return url

    def response_url(self, url: str) -> ResponseUrl:
        """The record for a ``response_url`` (by URL or id)."""
        return self.response_urls[url.rstrip("/").rsplit("/", 1)[-1]]

    def response_posts(self, url: str | None = None) -> list[ResponsePost]:
        states = [self.response_url(url)] if url else list(self.response_urls.values())
        return sorted((p for s in states for p in s.posts), key=lambda p: p.at)

    async def _response_url_handler(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, "response_url")
        state = self.response_urls.get(request.match_info["id"])
        if state is None:
            return self._text_response(rec, "invalid_url", status=404)
        body = rec.json if rec.json is not None else rec.form or None

        def refuse(error: str, status: int) -> web.Response:
            state.posts.append(ResponsePost(state.id, body, rec.at, status, error))
            return self._text_response(rec, error, status=status)

        fault = self._take_fault("response_url")
        if fault is not None:
            return refuse(fault.error, fault.status or 500)
        if self.clock() - state.issued_at > self.response_url_ttl:
            return refuse("expired_url", 404)
        if state.uses >= self.response_url_uses:
            return refuse("used_url", 404)
        if not isinstance(body, dict):
            return refuse("invalid_payload", 400)
        try:
            blocks = self._blocks_arg(body)
        except ApiError as err:
            return refuse(err.error, 400)
        text = str(body.get("text") or "")
        if not text and not blocks and not body.get("delete_original"):
            return refuse("no_text", 400)
        self._apply_response(state, body, text, blocks)
        state.posts.append(ResponsePost(state.id, body, rec.at, 200))
        return self._json_response(rec, {"ok": True})

    def _apply_response(
        self, state: ResponseUrl, body: Mapping[str, Any], text: str, blocks: list[Any] | None
    ) -> None:
        source = (
            self.message(state.channel_id, state.message_ts)
            if state.channel_id and state.message_ts
            else None
        )
        if source is not None and _truthy(body.get("delete_original")):
            self._messages[str(state.channel_id)].remove(source)
            self._touch()
            return
        if source is not None and _truthy(body.get("replace_original")):
            source["text"] = text
            if blocks is not None:
                source["blocks"] = blocks
            else:
                source.pop("blocks", None)
            source["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
            self._touch()
            return
        thread_ts = _opt_str(body.get("thread_ts"))
        if body.get("response_type") == "in_channel" and state.channel_id:
            self._store_message(
                self._channel(state.channel_id), text=text, blocks=blocks, thread_ts=thread_ts
            )
        else:
            self._add_ephemeral(
                user=state.user_id,
                channel=state.channel_id,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                source="response_url",
            )

    # ------------------------------------------------------------------ request building

    def issue_trigger(self, user_id: str) -> str:
        """A fresh trigger_id (valid for ``trigger_ttl`` s of fake time, once)."""
        trigger_id = (
            f"{int(time.time() * 1000)}.{secrets.randbelow(10**10):010d}.{secrets.token_hex(16)}"
        )
        self.triggers[trigger_id] = Trigger(trigger_id, user_id, self.clock())
        return trigger_id

    def _restamp(self, payload: Mapping[str, Any]) -> None:
        """Delivery starts the trigger's 3 s (Slack issues it when it sends the request)."""
        trigger = self.triggers.get(str(payload.get("trigger_id", "")))
        if trigger is not None and trigger.exchanged_at is None:
            trigger.issued_at = self.clock()

    def sign_request(
        self,
        body: bytes,
        content_type: str,
        *,
        bad_signature: bool = False,
        stale: bool = False,
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SignedRequest:
        """Signs ``body`` like Slack: ``X-Slack-Signature: v0=HMAC(v0:{ts}:{body})``.

        ``bad_signature`` signs with a wrong secret; ``stale`` uses a timestamp 6 minutes
        old (outside the 5-minute window); ``timestamp`` overrides it.
        """
        ts = timestamp if timestamp is not None else int(time.time()) - (_STALE_AGE if stale else 0)
        secret = self.signing_secret + ("-wrong" if bad_signature else "")
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(secret, ts, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **(headers or {}),
        }
        return SignedRequest(body, all_headers)

    def _user(self, user_id: str | None) -> FakeUser:
        return self.users[user_id] if user_id else self.user

    def slash_command_payload(
        self,
        command: str = "/imagine",
        text: str = "",
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        team_id: str | None = None,
        **extra: str,
    ) -> JSON:
        """The form fields of a slash command (also the Socket Mode ``slash_commands`` payload).

        Issues a fresh ``trigger_id`` and a ``response_url`` on the fake.
        """
        user = self._user(user_id)
        channel = self._channel(channel_id or self.channel.id)
        payload: JSON = {
            "token": self.verification_token,
            "team_id": team_id or self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel.id,
            "channel_name": "directmessage" if channel.is_im else channel.name,
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.issue_response_url("slash_commands", user.id, channel.id),
            "trigger_id": self.issue_trigger(user.id),
        }
        payload.update(extra)
        return payload

    def slash_command(
        self,
        command: str = "/imagine",
        text: str = "",
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        team_id: str | None = None,
        bad_signature: bool = False,
        stale: bool = False,
        timestamp: int | None = None,
        **extra: str,
    ) -> SignedRequest:
        """A signed form-encoded slash command: ``body, headers = fake.slash_command()``."""
        payload = self.slash_command_payload(
            command, text, user_id=user_id, channel_id=channel_id, team_id=team_id, **extra
        )
        return self.sign_request(
            urlencode(payload).encode(),
            _SLASH_CONTENT_TYPE,
            bad_signature=bad_signature,
            stale=stale,
            timestamp=timestamp,
        )

    def _user_obj(self, user: FakeUser) -> JSON:
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": self.team_id}

    def _find_action(self, channel_id: str, action_id: str) -> tuple[JSON, JSON, JSON] | None:
        for msg in reversed(self._messages.get(channel_id, [])):
            found = _find_element(msg, action_id)
            if found is not None:
                return msg, found[0], found[1]
        return None

    def block_actions_payload(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user: str | None = None,
        channel: str | None = None,
        message_ts: str | None = None,
        block_id: str | None = None,
        action_type: str = "button",
        state_values: Mapping[str, Any] | None = None,
    ) -> JSON:
        """A ``block_actions`` payload for a button click on a stored message.

        Without ``message_ts`` the newest message in ``channel`` carrying ``action_id`` is
        used; ``block_id``, ``value`` and ``text`` default to that element's.
        """
        who = self._user(user)
        chan = self._channel(channel or self.channel.id)
        msg: JSON | None = self.message(chan.id, message_ts) if message_ts else None
        element: JSON | None = None
        found_block: JSON | None = None
        if msg is not None:
            hit = _find_element(msg, action_id)
            if hit is not None:
                found_block, element = hit
        elif message_ts is None:
            hit3 = self._find_action(chan.id, action_id)
            if hit3 is not None:
                msg, found_block, element = hit3
        action: JSON = {
            "type": action_type,
            "action_id": action_id,
            "block_id": block_id or (found_block or {}).get("block_id") or "fake-block",
            "action_ts": f"{time.time():.6f}",
        }
        if element is not None and "text" in element:
            action["text"] = element["text"]
        resolved_value = value if value is not None else (element or {}).get("value")
        if resolved_value is not None:
            action["value"] = resolved_value
        ts = msg["ts"] if msg is not None else message_ts
        payload: JSON = {
            "type": "block_actions",
            "user": self._user_obj(who),
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": chan.id,
                "is_ephemeral": False,
            },
            "trigger_id": self.issue_trigger(who.id),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": chan.id, "name": chan.name},
            "state": {"values": dict(state_values or {})},
            "response_url": self.issue_response_url("block_actions", who.id, chan.id, ts),
            "actions": [action],
        }
        if msg is not None:
            payload["message"] = copy.deepcopy(msg)
            if msg.get("thread_ts"):
                payload["container"]["thread_ts"] = msg["thread_ts"]
        return payload

    def block_actions(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user: str | None = None,
        channel: str | None = None,
        message_ts: str | None = None,
        block_id: str | None = None,
        bad_signature: bool = False,
        stale: bool = False,
    ) -> SignedRequest:
        """A signed ``payload=<json>`` form request for :meth:`block_actions_payload`."""
        payload = self.block_actions_payload(
            action_id,
            value,
            user=user,
            channel=channel,
            message_ts=message_ts,
            block_id=block_id,
        )
        return self.interactive_request(payload, bad_signature=bad_signature, stale=stale)

    def interactive_request(
        self, payload: Mapping[str, Any], *, bad_signature: bool = False, stale: bool = False
    ) -> SignedRequest:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.sign_request(
            body, _SLASH_CONTENT_TYPE, bad_signature=bad_signature, stale=stale
        )

    def view_submission_payload(
        self,
        callback_id: str,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        private_metadata: str | None = None,
        *,
        user: str | None = None,
        view_id: str | None = None,
    ) -> JSON:
        """A ``view_submission`` payload.

        ``values`` is ``{block_id: {action_id: value}}``; a plain string value becomes
        ``{"type": "plain_text_input", "value": s}``, a dict is used as is.  The view is
        the one opened with ``view_id`` (or the newest with ``callback_id``), else a minimal
        modal (it always has ``"type": "modal"``, which bolt needs).
        """
        who = self._user(user)
        base: JSON | None = self.views.get(view_id) if view_id else None
        if base is None:
            base = next(
                (v for v in reversed(self.views_opened) if v.get("callback_id") == callback_id),
                None,
            )
        view = copy.deepcopy(base) if base is not None else None
        if view is None:
            view = self._render_view(
                {
                    "type": "modal",
                    "title": {"type": "plain_text", "text": "Modal"},
                    "callback_id": callback_id,
                    "blocks": [],
                },
                view_id or self._ids.next("V"),
                None,
            )
        view.pop("user_id", None)
        view["callback_id"] = callback_id
        if private_metadata is not None:
            view["private_metadata"] = private_metadata
        state: JSON = {}
        for block_id, actions in (values or {}).items():
            state[block_id] = {}
            for action_id, val in actions.items():
                if isinstance(val, Mapping):
                    state[block_id][action_id] = dict(val)
                else:
                    state[block_id][action_id] = {"type": "plain_text_input", "value": val}
        view["state"] = {"values": state}
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._user_obj(who),
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "trigger_id": self.issue_trigger(who.id),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def view_submission(
        self,
        callback_id: str,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        private_metadata: str | None = None,
        *,
        user: str | None = None,
        view_id: str | None = None,
        bad_signature: bool = False,
        stale: bool = False,
    ) -> SignedRequest:
        payload = self.view_submission_payload(
            callback_id, values, private_metadata, user=user, view_id=view_id
        )
        return self.interactive_request(payload, bad_signature=bad_signature, stale=stale)

    def _files_arg(self, files: Iterable[Mapping[str, Any] | str]) -> list[FakeFile]:
        out = []
        for f in files:
            file_id = f if isinstance(f, str) else str(f["id"])
            out.append(self.files[file_id])
        return out

    def user_message(
        self,
        text: str = "",
        *,
        user: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
        files: Iterable[Mapping[str, Any] | str] = (),
    ) -> JSON:
        """Stores a user's message (sharing ``files``) and returns its ``message`` event."""
        who = self._user(user)
        chan = self._channel(channel or self.channel.id)
        shared = self._files_arg(files)
        msg = self._store_message(
            chan,
            user=who.id,
            text=text,
            thread_ts=thread_ts,
            files=shared,
            subtype="file_share" if shared else None,
        )
        event = copy.deepcopy(msg)
        event.update({"channel": chan.id, "event_ts": msg["ts"], "channel_type": chan.channel_type})
        event.setdefault("client_msg_id", str(uuid.uuid4()))
        return event

    def app_mention(
        self,
        text: str = "",
        *,
        user: str | None = None,
        channel: str | None = None,
        thread_ts: str | None = None,
        files: Iterable[Mapping[str, Any] | str] = (),
    ) -> JSON:
        """Stores a message mentioning the bot and returns its ``app_mention`` event.

        ``<@BOT>`` is prepended to ``text`` unless it already mentions the bot.
        """
        mention = f"<@{self.bot_user_id}>"
        full = text if mention in text else f"{mention} {text}".strip()
        event = self.user_message(
            full, user=user, channel=channel, thread_ts=thread_ts, files=files
        )
        event["type"] = "app_mention"
        event.pop("channel_type", None)
        event.pop("subtype", None)
        return event

    def event_payload(self, event: Mapping[str, Any], *, event_id: str | None = None) -> JSON:
        """Wraps an event in the ``event_callback`` envelope (HTTP body / Socket Mode payload)."""
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_urlsafe(24)}",
        }

    def event_callback(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        bad_signature: bool = False,
        stale: bool = False,
    ) -> SignedRequest:
        """A signed Events API request (JSON); retries carry ``X-Slack-Retry-Num``/``-Reason``.

        Pass the same ``event_id`` for a retry of an earlier delivery.
        """
        payload = self.event_payload(event, event_id=event_id)
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return self.sign_request(
            json.dumps(payload).encode(),
            "application/json",
            bad_signature=bad_signature,
            stale=stale,
            headers=headers,
        )

    def url_verification(self, challenge: str = "fake-challenge") -> SignedRequest:
        body = {
            "token": self.verification_token,
            "challenge": challenge,
            "type": "url_verification",
        }
        return self.sign_request(json.dumps(body).encode(), "application/json")

    async def post_signed(
        self,
        url: str,
        body: bytes | SignedRequest,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
    ) -> SignedResponse:
        """POSTs a (signed) request to an HTTP-mode app, as Slack would, and records the answer.

        A 200 answer to a slash command is applied like Slack applies an ack (its ``text``
        / ``blocks`` become an ephemeral message, or a channel message with
        ``"response_type": "in_channel"``).  ``latency`` is measured on the fake clock.
        """
        assert self._session is not None, "FakeSlack is not started"
        req = body if isinstance(body, SignedRequest) else SignedRequest(body, dict(headers or {}))
        if isinstance(body, SignedRequest) and headers:
            req = SignedRequest(body.body, {**body.headers, **headers})
        try:
            payload, kind = req.payload, req.kind
        except ValueError:
            payload, kind = {}, "unknown"
        self._restamp(payload)
        start = self.clock()
        async with self._session.post(
            url, data=req.body, headers=req.headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            data = await resp.read()
            answer = SignedResponse(
                url=url,
                kind=kind,
                payload=payload,
                status=resp.status,
                headers=dict(resp.headers),
                body=data,
                latency=self.clock() - start,
                at=self.clock(),
            )
        self.deliveries.append(answer)
        if answer.status == 200:
            ack: Any = answer.text
            with contextlib.suppress(ValueError):
                ack = answer.json()
            self._apply_ack(kind, payload, ack)
        self._touch()
        return answer

    def _apply_ack(self, kind: str, payload: Mapping[str, Any], ack: Any) -> None:
        if kind != "slash_commands" or not ack:
            return
        user = str(payload.get("user_id", ""))
        channel = _opt_str(payload.get("channel_id"))
        if isinstance(ack, str):
            self._add_ephemeral(
                user=user, channel=channel, text=ack, blocks=None, thread_ts=None, source="ack"
            )
            return
        if not isinstance(ack, Mapping) or not (ack.get("text") or ack.get("blocks")):
            return
        text = str(ack.get("text") or "")
        if ack.get("response_type") == "in_channel" and channel:
            self._store_message(self._channel(channel), text=text, blocks=ack.get("blocks"))
        else:
            self._add_ephemeral(
                user=user,
                channel=channel,
                text=text,
                blocks=ack.get("blocks"),
                thread_ts=None,
                source="ack",
            )

    # ------------------------------------------------------------------ Socket Mode

    async def _socket_handler(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.socket_tickets:
            return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = SocketConnection(ws, request.query, len(self.socket_connections), self.clock())
        self.socket_connections.append(conn)
        live = sum(1 for c in self.socket_connections if c.live) + 1
        try:
            await conn.send(
                {
                    "type": "hello",
                    "num_connections": live,
                    "debug_info": {
                        "host": f"applink-fake-{conn.index}",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
            conn.hello_sent = True
            self._touch()
            if conn.query.get("debug_reconnects") == "true":
                self._spawn(self._debug_reconnect(conn))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    conn.pings.append(bytes(msg.data))
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.pongs.append(bytes(msg.data))
                elif msg.type == WSMsgType.BINARY:
                    conn.received.append(bytes(msg.data))
                self._touch()
        finally:
            conn.closed = True
            conn.close_code = ws.close_code
            self._touch()
        return ws

    def _on_socket_text(self, conn: SocketConnection, data: str) -> None:
        try:
            message: Any = json.loads(data)
        except ValueError:
            message = data
        conn.received.append(message)
        envelope = (
            self.envelopes.get(str(message.get("envelope_id")))
            if isinstance(message, dict)
            else None
        )
        if envelope is None or not isinstance(message, dict):
            self.unknown_socket_messages.append(message)
            return
        now = self.clock()
        payload = message.get("payload")
        ack = SocketAck(
            envelope_id=envelope.envelope_id,
            payload=payload if isinstance(payload, dict) else None,
            at=now,
            latency=now - envelope.sent_at,
            connection=conn.index,
            raw=data,
        )
        self.socket_acks.append(ack)
        if envelope.ack is None:
            envelope.ack = ack
            self._apply_ack(envelope.type, envelope.payload, ack.payload)

    async def _debug_reconnect(self, conn: SocketConnection) -> None:
        await asyncio.sleep(self.debug_reconnect_after)
        if conn.live:
            await self.socket_disconnect("refresh_requested", connection=conn)

    def live_connection(self) -> SocketConnection | None:
        """The newest live connection (the one envelopes go to)."""
        return next((c for c in reversed(self.socket_connections) if c.live), None)

    async def wait_socket_connected(
        self, timeout: float = 10.0, *, count: int = 1
    ) -> SocketConnection:
        """Waits for a live, greeted connection; ``count`` = total connections ever opened."""

        def find() -> SocketConnection | None:
            if len(self.socket_connections) < count:
                return None
            return self.live_connection()

        return await self.wait_for(find, timeout, f"socket connection #{count}")

    async def wait_socket_disconnected(self, timeout: float = 10.0) -> None:
        await self.wait_for(
            lambda: not any(c.live for c in self.socket_connections),
            timeout,
            "all socket connections to close",
        )

    async def socket_send(
        self,
        kind: EnvelopeType | str,
        payload: Mapping[str, Any] | SignedRequest,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        connection: SocketConnection | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Sends an envelope to the newest live connection (waiting for one) -> envelope_id.

        ``payload`` is a slash-command form dict, an interactive payload, or for
        ``events_api`` an ``event_callback`` (a bare event is wrapped with
        :meth:`event_payload`).  A :class:`SignedRequest` is unwrapped to its payload.
        ``accepts_response_payload`` defaults to Slack's: True for slash commands and
        view submissions / block suggestions, else False.  Events carry ``retry_attempt``
        (default 0) and ``retry_reason`` (default ``""``).
        """
        body = dict(payload.payload if isinstance(payload, SignedRequest) else payload)
        if kind == "events_api" and body.get("type") != "event_callback" and "event" not in body:
            body = self.event_payload(body)
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or (
                kind == "interactive"
                and body.get("type") in ("view_submission", "block_suggestion")
            )
        conn = connection or await self.wait_socket_connected(timeout)
        envelope = SocketEnvelope(
            envelope_id=str(uuid.uuid4()),
            type=kind,
            payload=body,
            accepts_response_payload=accepts_response_payload,
            connection=conn.index,
            sent_at=self.clock(),
        )
        message = envelope.message
        if kind == "events_api":
            message["retry_attempt"] = retry_attempt or 0
            message["retry_reason"] = retry_reason or ""
        self.envelopes[envelope.envelope_id] = envelope
        self._restamp(body)
        await conn.send(message)
        self._touch()
        return envelope.envelope_id

    async def wait_socket_ack(self, envelope_id: str, timeout: float = 5.0) -> SocketAck:
        """The app's ack for an envelope (``ack.payload`` is the response payload, if any)."""

        def find() -> SocketAck | None:
            envelope = self.envelopes.get(envelope_id)
            return envelope.ack if envelope is not None else None

        return await self.wait_for(find, timeout, f"the ack of envelope {envelope_id}")

    async def socket_disconnect(
        self, reason: str = "refresh_requested", *, connection: SocketConnection | None = None
    ) -> None:
        """Sends ``{"type": "disconnect", "reason": ...}`` (slack-sdk reconnects to a new URL).

        Reasons Slack uses: ``warning`` (about 10 s ahead), ``refresh_requested``,
        ``link_disabled`` (Socket Mode switched off), ``too_many_websockets``.
        """
        conn = connection or self.live_connection()
        if conn is None:
            raise RuntimeError("no live socket connection")
        await conn.send(
            {
                "type": "disconnect",
                "reason": reason,
                "debug_info": {"host": f"applink-fake-{conn.index}"},
            }
        )

    async def socket_drop(
        self, *, connection: SocketConnection | None = None, code: int = 1011
    ) -> None:
        """Closes a connection from the server side (slack-sdk reconnects on CLOSE)."""
        conn = connection or self.live_connection()
        if conn is not None and not conn.ws.closed:
            await conn.ws.close(code=code, message=b"fake drop")

    async def socket_ping(
        self, data: bytes = b"fake-ping", *, connection: SocketConnection | None = None
    ) -> None:
        conn = connection or self.live_connection()
        if conn is None:
            raise RuntimeError("no live socket connection")
        await conn.ws.ping(data)


# ======================================================================================
# Helpers
# ======================================================================================


def _public_view(view: Mapping[str, Any]) -> JSON:
    """A stored view without the fake's bookkeeping (``user_id``)."""
    return {k: copy.deepcopy(v) for k, v in view.items() if k != "user_id"}


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _filetype(name: str, mimetype: str) -> str:
    if "." in name:
        return name.rsplit(".", 1)[1].lower()
    ext = mimetypes.guess_extension(mimetype) or ""
    return ext.lstrip(".") or "binary"


def _with_block_ids(blocks: list[Any]) -> list[Any]:
    """Copies blocks, giving each a ``block_id`` if missing (Slack fills in random ones)."""
    out = []
    for block in copy.deepcopy(blocks):
        if isinstance(block, dict) and not block.get("block_id"):
            block["block_id"] = secrets.token_urlsafe(3)
        out.append(block)
    return out


def _find_element(msg: Mapping[str, Any], action_id: str) -> tuple[JSON, JSON] | None:
    for block in msg.get("blocks") or []:
        if not isinstance(block, dict):
            continue
        candidates = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for el in candidates:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block, el
    return None


def _parse_multipart(content_type: str, raw: bytes) -> list[RecordedPart]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    parts: list[RecordedPart] = []
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append(
            RecordedPart(
                name=str(name or ""),
                filename=part.get_filename(),
                content_type=part.get_content_type() if part.get("Content-Type") else None,
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts
