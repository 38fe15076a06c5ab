"""A local fake of the Discord API (REST + gateway) that the real discord.py client talks to.

``FakeDiscord`` is an aiohttp app on 127.0.0.1 (port 0) serving

* REST under ``/api/v10`` (``fake.api_url``): users, gateway, application, command
  bulk-overwrite, interaction callbacks, interaction webhooks (``@original``, followups),
  channel messages (multipart uploads with a per-file size limit), channels, guilds, members;
* a gateway websocket at ``/gateway`` (``fake.gateway_url``): HELLO, IDENTIFY (token and
  intents checked), heartbeats, READY + GUILD_CREATE, RESUME (replay) or op 9, op 8 member
  chunks, and dispatches (INTERACTION_CREATE, MESSAGE_CREATE) with ``zlib-stream``
  transport compression when the client asks for it (discord.py 2.7 always does);
* ``GET /attachments/<id>/<filename>``: the "CDN" for uploaded and test-registered files.

Pointing discord.py at it (discord.py has no setting for this; both are class attributes)::

    async with FakeDiscord() as fake:
        with pointed_at(fake):                    # patches and restores both URLs
            client = MyClient(intents=..., guild_ready_timeout=0.1)
            async with client:                    # sets up client.loop, so wait_until_ready works
                task = asyncio.create_task(client.start(fake.token))
                await client.wait_until_ready()
                payload = await fake.send_interaction(
                    fake.slash_command("imagine", {"prompt": "x"}))
                cb = await fake.wait_for_callback(payload["id"])   # cb.type == 5, cb.latency
                patch = await fake.wait_for_request(lambda r: r.method == "PATCH")
            await task                            # close() (by ``async with``) ends start()

* REST: ``discord.http.Route.BASE = fake.api_url``.  ``Route`` builds its URL in
  ``__init__``, so the patch must be active for the client's whole life.  Interaction
  callbacks and webhooks also go through ``Route``.
* Gateway: a plain ``discord.Client`` never asks ``GET /gateway/bot``; it connects to the
  class attribute ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (and goes back to
  it after an op 9).  ``pointed_at`` sets it to ``yarl.URL(fake.gateway_url)``.
  ``AutoShardedClient`` does ask ``GET /gateway/bot``, which answers ``fake.gateway_url``.
  After READY, discord.py resumes against READY's ``resume_gateway_url`` (the same URL).
* discord.py appends ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream`` when
  ``zstandard`` or Python 3.14's ``compression.zstd`` is importable).  The fake answers
  with one shared zlib stream per connection, each message ending in ``00 00 ff ff``
  (Z_SYNC_FLUSH), like Discord; for zstd it compresses only if ``compression.zstd`` or
  ``zstandard`` is importable (untested here), otherwise it sends text frames (discord.py
  accepts text frames in any mode).
* A bot running in another process needs the same two patches (see
  :func:`adapters.discord.point_discord_py`), driven by the adapter's settings.

Delivery and restarts: events (``send_interaction``, ``send_message_create``) go to the
newest live, READY connection.  While no client is connected they are **queued** and
flushed right after the next READY + GUILD_CREATE burst (or after RESUMED).  An
interaction's clocks (3 s ack deadline, ``token_lifetime``) start when it is delivered,
not when it is queued.  (Real Discord would show "This interaction failed" instead.)

Time: ``fake.clock()`` is ``time.monotonic()`` plus ``advance_clock(seconds)`` offsets;
token expiry and the ack deadline use it, so tests can expire tokens instantly.

Wire facts about discord.py 2.7.1 that the fake accommodates (and tests should know):

* ``import discord`` imports the deprecated stdlib ``audioop``; with ``filterwarnings =
  error`` that import fails.  This module imports discord.py under a warnings filter, so
  import the fake (or filter ``'audioop' is deprecated``) before ``import discord``.
* ``on_ready`` fires ``guild_ready_timeout`` (default 2 s) after the last GUILD_CREATE;
  pass ``guild_ready_timeout=0.1`` to keep tests fast.
* Responses must say exactly ``Content-Type: application/json`` (no charset), or
  discord.py treats bodies as text; callbacks are sent with ``?with_response=1`` and need
  ``{"interaction": {...}}`` back.  Interaction payloads need ``attachment_size_limit``.
* Rate-limit headers are optional; a 429 is only retried if it carries a ``Via`` header
  and a JSON ``retry_after``, otherwise discord.py raises (it assumes Cloudflare).
* ``Client.close()`` usually reaches the server as close code 4000, not 1000 (aiohttp
  hands the close to the task blocked in ``receive()``, whose cleanup closes with 4000).
* After op 9 (or any non-initial IDENTIFY) ``Client.before_identify_hook`` sleeps 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import io
import json
import mimetypes
import re
import secrets
import time
import warnings
import zlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeVar

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.discord_payloads import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Intents,
    Overwrite,
    Perm,
    Snowflakes,
    iso,
)
from tests.fakes.discord_rules import (
    MESSAGE_FLAG_COMPONENTS_V2,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    ApiError,
    Issues,
    check_message_body,
    check_modal,
    validate_commands,
)

with warnings.catch_warnings():
    # discord.py 2.7 imports the stdlib ``audioop`` (deprecated in 3.11, removed in 3.13) in
    # discord/player.py; under pytest's ``filterwarnings = error`` a bare ``import discord``
    # fails.  Importing it here, once, keeps that warning out of every test using the fake.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    from adapters.discord import point_discord_py

__all__ = [
    "DEFAULT_UPLOAD_LIMIT",
    "ApiError",
    "CallbackRecord",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "GatewayConnection",
    "Intents",
    "InteractionRecord",
    "Overwrite",
    "Perm",
    "RecordedPart",
    "RecordedRequest",
    "pointed_at",
    "running_fake",
]

JSON = dict[str, Any]
T = TypeVar("T")

DEFAULT_UPLOAD_LIMIT: Final = 10 * 1024 * 1024
"""Discord's default per-file upload limit (10 MiB, as ``DEFAULT_FILE_SIZE_LIMIT_BYTES``)."""
_API_RE: Final = re.compile(r"^/api/v(\d+)(/.*)$")
_MENTION_RE: Final = re.compile(r"<@!?(\d+)>")
_FILES_FIELD_RE: Final = re.compile(r"^files\[(\d+)\]$")
_CLOSE_REASONS: Final[Mapping[int, str]] = {
    4001: "Unknown opcode.",
    4002: "Decode error.",
    4003: "Not authenticated.",
    4004: "Authentication failed.",
    4005: "Already authenticated.",
    4010: "Invalid shard.",
    4012: "Invalid API version.",
    4013: "Invalid intent(s).",
    4014: "Disallowed intent(s).",
}


# ======================================================================================
# Records
# ======================================================================================


@dataclass(frozen=True)
class RecordedPart:
    """One multipart part (``payload_json`` or ``files[n]``)."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8")


@dataclass
class RecordedRequest:
    """One HTTP request the fake received.

    Attributes:
        method: HTTP method.
        path: Path inside the API (``/channels/1/messages``) or the raw path for non-API
            routes (``/attachments/1/a.png``).
        query: Query parameters.
        headers: Request headers (last value wins).
        json: The JSON body, or the parsed ``payload_json`` part of a multipart body.
        parts: All multipart parts (empty for JSON bodies).
        raw: Raw body for non-multipart requests.
        at: ``fake.clock()`` when it arrived.
        status: The status the fake answered.
        response: The JSON the fake answered (None for 204 / binary).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    parts: list[RecordedPart]
    raw: bytes
    at: float
    status: int = 0
    response: Any = None

    @property
    def files(self) -> list[RecordedPart]:
        """Multipart parts that carry a file (have a filename)."""
        return [p for p in self.parts if p.filename is not None]

    @property
    def is_multipart(self) -> bool:
        return bool(self.parts)

    @property
    def payload_json(self) -> Any:
        """The parsed ``payload_json`` part, or None."""
        for part in self.parts:
            if part.name == "payload_json":
                return json.loads(part.data)
        return None

    @property
    def error_code(self) -> int | None:
        if isinstance(self.response, dict) and self.status >= 400:
            code = self.response.get("code")
            return code if isinstance(code, int) else None
        return None


@dataclass
class CallbackRecord:
    """One ``POST /interactions/{id}/{token}/callback`` attempt (accepted or rejected).

    Attributes:
        interaction_id: The interaction.
        type: Callback type (4 message, 5 deferred, 6 deferred update, 7 update, 8
            autocomplete, 9 modal).
        data: The callback's ``data`` object.
        files: Uploaded files (type 4/7 multipart).
        at: ``fake.clock()`` when it arrived.
        latency: Seconds between delivery of the interaction and this callback.
        status: HTTP status the fake answered (204/200 ok, 400 40060, 404 10062 ...).
        error_code: Discord error code when rejected.
    """

    interaction_id: int
    type: int | None
    data: Any
    files: list[RecordedPart]
    at: float
    latency: float | None
    status: int = 0
    error_code: int | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class InteractionRecord:
    """An interaction created by the fake (see ``fake.interactions``)."""

    payload: JSON
    queued_at: float
    delivered_at: float | None = None
    ack_type: int | None = None
    acked_at: float | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    autocomplete_choices: list[Any] | None = None

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return str(self.payload["token"])

    @property
    def type(self) -> int:
        return int(self.payload["type"])

    @property
    def user_id(self) -> int:
        user = self.payload.get("member", {}).get("user") or self.payload.get("user") or {}
        return int(user.get("id", 0))


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int]
    identify: JSON
    seq: int = 0
    history: list[JSON] = field(default_factory=list)
    resumable: bool = True
    conn: GatewayConnection | None = None


class GatewayConnection:
    """One websocket connection to ``/gateway`` (see ``fake.connections``).

    Attributes:
        query: The connect URL's query (``v``, ``encoding``, ``compress``).
        compression: ``"zlib-stream"``, ``"zstd-stream"`` or None (what the fake applies).
        identify: The IDENTIFY ``d`` payload, if any.
        resumed: True if this connection RESUMEd a session.
        ready: True once READY (and GUILD_CREATEs) or RESUMED were sent.
        heartbeats: Number of op 1 heartbeats received.
        sent: Every frame sent (decoded JSON), in order.
        received: Every frame received (decoded JSON), in order.
        closed / close_code: Set when the socket ends (``close_code`` is the fake's code when
            the fake closed it, else the client's).
    """

    def __init__(self, ws: web.WebSocketResponse, query: Mapping[str, str]) -> None:
        self.ws = ws
        self.query = dict(query)
        self.compression: str | None = None
        self._zlib: Any = None
        self._zstd: Callable[[bytes], bytes] | None = None
        requested = self.query.get("compress")
        if requested == "zlib-stream":
            self.compression = requested
            self._zlib = zlib.compressobj()
        elif requested == "zstd-stream":
            self._zstd = _zstd_stream()
            self.compression = requested if self._zstd is not None else None
        self.identify: JSON | None = None
        self.session: _Session | None = None
        self.resumed = False
        self.ready = False
        self.heartbeats = 0
        self.sent: list[JSON] = []
        self.received: list[JSON] = []
        self.closed = False
        self.close_code: int | None = None
        self.server_close_code: int | None = None
        self._lock = asyncio.Lock()

    @property
    def session_id(self) -> str | None:
        return self.session.id if self.session else None

    @property
    def live(self) -> bool:
        return not self.closed and not self.ws.closed

    async def send(self, payload: JSON) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if not self.live:
                raise ConnectionResetError("gateway connection closed")
            self.sent.append(payload)
            if self._zlib is not None:
                data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)
            elif self._zstd is not None:
                await self.ws.send_bytes(self._zstd(text.encode()))
            else:
                await self.ws.send_str(text)

    async def close(self, code: int, reason: str | None = None) -> None:
        if not self.ws.closed:
            self.server_close_code = code
            message = (reason or _CLOSE_REASONS.get(code, "")).encode()
            await self.ws.close(code=code, message=message)


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    method: str | None
    status: int
    code: int
    message: str
    retry_after: float | None
    is_global: bool
    remaining: int


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: Callable[..., Awaitable[tuple[int, Any]]]
    auth: bool


# ======================================================================================
# Pointing discord.py at the fake
# ======================================================================================


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[FakeDiscord]:
    """``with pointed_at(fake):`` points ``Route.BASE`` and ``DEFAULT_GATEWAY`` at the fake."""
    restore = point_discord_py(fake.api_url, fake.gateway_url)
    try:
        yield fake
    finally:
        restore()


# ======================================================================================
# The fake
# ======================================================================================


class FakeDiscord:
    """Fake Discord REST API + gateway; ``async with FakeDiscord() as fake:``.

    Args:
        token: The bot token; REST bot routes want ``Authorization: Bot <token>`` (else 401)
            and IDENTIFY/RESUME must carry it (else close 4004).
        bot_name: Username of the bot user.
        application_id: Application id (also the bot user's id); random snowflake if None.
        host / port: Where to listen (port 0 = any free port).
        upload_limit: Per-file upload limit in bytes (default 10 MiB); bigger files are
            refused with 413 / 40005.  Boosted guilds (premium_tier 2/3) allow 50/100 MiB.
        max_attachments: Most attachments on one message (10).
        token_lifetime: Seconds an interaction token works after delivery (900); later,
            webhook routes answer 401 / 50027 "Invalid Webhook Token".
        ack_deadline: Seconds to send the first callback (3.0); later it is 404 / 10062
            and the token is dead.  None disables the deadline.
        privileged_intents: Privileged intents "enabled in the portal" (default all three);
            IDENTIFY asking for others is closed with 4014.  Without MESSAGE_CONTENT here,
            REST message reads are redacted too.
        allow_resume: Accept RESUME (replaying missed events); False answers op 9.
        heartbeat_interval_ms: Sent in HELLO.
        shards: ``shards`` answered by ``GET /gateway/bot``.
        rate_limit_headers: Add ``X-RateLimit-*`` headers to API answers (generous values).
        echo_messages: Dispatch MESSAGE_CREATE to the live connection for messages the bot
            creates through REST (not queued when nobody is connected).
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "BananaBot",
        application_id: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        max_attachments: int = 10,
        token_lifetime: float = 900.0,
        ack_deadline: float | None = 3.0,
        privileged_intents: int = Intents.PRIVILEGED,
        allow_resume: bool = True,
        heartbeat_interval_ms: int = 41250,
        shards: int = 1,
        rate_limit_headers: bool = True,
        echo_messages: bool = True,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.upload_limit = upload_limit
        self.max_attachments = max_attachments
        self.token_lifetime = token_lifetime
        self.ack_deadline = ack_deadline
        self.privileged_intents = privileged_intents
        self.allow_resume = allow_resume
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.shards = shards
        self.rate_limit_headers = rate_limit_headers
        self.echo_messages = echo_messages

        self._ids = Snowflakes()
        self.application_id: int = application_id or self._ids.next()
        self.bot_user = FakeUser(self.application_id, bot_name, bot=True)
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user}
        self.guilds: list[FakeGuild] = []

        # Default world: one guild with #general, an NSFW channel, an owner, an admin
        # (MANAGE_GUILD via the "Admin" role) and a plain member.
        self.guild = self.add_guild("Banana Test Guild")
        self.channel = self.guild.channels[0]
        self.nsfw_channel = self.add_channel(self.guild, "nsfw-art", nsfw=True)
        self.owner = self.add_member(self.guild, "olga-owner")
        self.guild.owner_id = self.owner.id
        self.admin = self.add_member(
            self.guild,
            "alice-admin",
            role_name="Admin",
            permissions=DEFAULT_MEMBER_PERMISSIONS | Perm.MANAGE_GUILD | Perm.MANAGE_MESSAGES,
        )
        self.member = self.add_member(self.guild, "bob-member")

        # Records and state.
        self.requests: list[RecordedRequest] = []
        self.connections: list[GatewayConnection] = []
        self.identifies: list[JSON] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self.commands: dict[int | None, list[JSON]] = {}
        self.ready_count = 0
        self.resume_count = 0
        self.refused_resumes = 0
        self._by_token: dict[str, InteractionRecord] = {}
        self._messages: dict[int, JSON] = {}
        self._message_order: list[int] = []
        self._ephemeral: set[int] = set()
        self._attachments: dict[int, tuple[bytes, str, str]] = {}
        self._attachment_objects: dict[int, JSON] = {}
        self._modals: list[tuple[InteractionRecord, JSON]] = []
        self._dm_channels: dict[int, JSON] = {}
        self._adhoc_command_ids: dict[tuple[int, str], int] = {}
        self._sessions: dict[str, _Session] = {}
        self._pending: list[tuple[str, JSON]] = []
        self._faults: list[_Fault] = []
        self._clock_offset = 0.0
        self._changed: asyncio.Event | None = None
        self._delivery_lock: asyncio.Lock | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._changed = asyncio.Event()
        self._delivery_lock = asyncio.Lock()
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_get("/gateway/", self._gateway_handler)
        app.router.add_route("*", "/{tail:.*}", self._http_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.connections:
            if conn.live:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await conn.close(1001, "Fake Discord is shutting down.")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """REST base for ``discord.http.Route.BASE``: ``http://127.0.0.1:PORT/api/v10``."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """Websocket URL: ``ws://127.0.0.1:PORT/gateway`` (discord.py adds the query)."""
        return f"ws://{self.host}:{self.port}/gateway"

    def clock(self) -> float:
        """Fake time: ``time.monotonic()`` + everything passed to :meth:`advance_clock`."""
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Moves fake time forward (expires tokens, passes ack deadlines) without sleeping."""
        self._clock_offset += seconds

    # ------------------------------------------------------------------ world setup

    def add_guild(
        self, name: str, *, premium_tier: int = 0, bot_permissions: int = DEFAULT_BOT_PERMISSIONS
    ) -> FakeGuild:
        """Adds a guild with @everyone, a managed bot role, the bot member and ``#general``.

        Call before the client connects (it is sent in GUILD_CREATE on IDENTIFY).
        """
        gid = self._ids.next()
        everyone = FakeRole(gid, "@everyone", DEFAULT_MEMBER_PERMISSIONS)
        bot_role = FakeRole(
            self._ids.next(),
            self.bot_user.username,
            bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        guild = FakeGuild(
            gid, name, owner_id=0, roles=[everyone, bot_role], premium_tier=premium_tier
        )
        guild.members.append(FakeMember(self.bot_user, roles=[bot_role.id]))
        guild.channels.append(FakeChannel(self._ids.next(), "general", gid, topic="General chat"))
        self.guilds.append(guild)
        return guild

    def add_channel(
        self,
        guild: FakeGuild,
        name: str,
        *,
        nsfw: bool = False,
        overwrites: Sequence[Overwrite] = (),
        type: int = 0,
    ) -> FakeChannel:
        """Adds a channel (``overwrites`` e.g. ``Overwrite(guild.id, deny=Perm.ATTACH_FILES)``)."""
        channel = FakeChannel(
            self._ids.next(),
            name,
            guild.id,
            type=type,
            nsfw=nsfw,
            position=len(guild.channels),
            overwrites=list(overwrites),
        )
        guild.channels.append(channel)
        return channel

    def add_member(
        self,
        guild: FakeGuild,
        username: str,
        *,
        permissions: int | None = None,
        role_name: str | None = None,
        roles: Sequence[int] = (),
    ) -> FakeUser:
        """Adds a user to ``guild``; ``permissions`` creates a role granting them."""
        user = FakeUser(self._ids.next(), username, global_name=username.split("-")[0].title())
        self.users[user.id] = user
        role_ids = list(roles)
        if permissions is not None:
            role = FakeRole(
                self._ids.next(),
                role_name or f"{username}-role",
                permissions,
                position=len(guild.roles),
            )
            guild.roles.append(role)
            role_ids.append(role.id)
        guild.members.append(FakeMember(user, roles=role_ids))
        return user

    def get_guild(self, guild_id: int | str) -> FakeGuild | None:
        return next((g for g in self.guilds if g.id == int(guild_id)), None)

    def _channel(self, channel_id: int) -> tuple[FakeGuild | None, JSON] | None:
        for guild in self.guilds:
            channel = guild.channel(channel_id)
            if channel is not None:
                return guild, channel.to_dict()
        dm = self._dm_channels.get(channel_id)
        return (None, dm) if dm is not None else None

    def dm_channel(self, user: FakeUser) -> JSON:
        """The DM channel between the bot and ``user`` (created on first use)."""
        for channel in self._dm_channels.values():
            if channel["recipients"][0]["id"] == str(user.id):
                return channel
        cid = self._ids.next()
        channel = {
            "id": str(cid),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [user.to_dict()],
        }
        self._dm_channels[cid] = channel
        return channel

    # ------------------------------------------------------------------ attachments

    def add_attachment(
        self, data: bytes, filename: str, content_type: str | None = None, *, ephemeral: bool = True
    ) -> JSON:
        """Registers bytes served at ``/attachments/<id>/<filename>``; returns the attachment.

        Use the result as a slash-command attachment option value or in
        ``send_message_create(attachments=[...])``.
        """
        return dict(self._store_attachment(data, filename, content_type, ephemeral=ephemeral))

    def attachment_bytes(self, attachment: Mapping[str, Any] | int | str) -> bytes:
        aid = int(attachment["id"]) if isinstance(attachment, Mapping) else int(attachment)
        return self._attachments[aid][0]

    def _store_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        ephemeral: bool,
        description: str | None = None,
    ) -> JSON:
        aid = self._ids.next()
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self._attachments[aid] = (data, filename, content_type)
        url = f"{self.base_url}/attachments/{aid}/{filename}"
        obj: JSON = {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }
        if description is not None:
            obj["description"] = description
        if ephemeral:
            obj["ephemeral"] = True
        if content_type.startswith("image/"):
            with contextlib.suppress(Exception):
                from PIL import Image

                with Image.open(io.BytesIO(data)) as img:
                    obj["width"], obj["height"] = img.size
        self._attachment_objects[aid] = obj
        return obj

    # ------------------------------------------------------------------ assertions helpers

    def callbacks_for(self, interaction_id: int | str) -> list[CallbackRecord]:
        """All callback attempts (accepted and rejected) for an interaction, in order."""
        record = self.interactions.get(int(interaction_id))
        return list(record.callbacks) if record else []

    def messages_in(self, channel_id: int | str, *, include_ephemeral: bool = False) -> list[JSON]:
        """Messages in a channel, oldest first (bot, interaction responses, injected ones)."""
        out = []
        for mid in self._message_order:
            msg = self._messages.get(mid)
            if msg is None or msg["channel_id"] != str(channel_id):
                continue
            if mid in self._ephemeral and not include_ephemeral:
                continue
            out.append(msg)
        return out

    def get_message(self, message_id: int | str) -> JSON | None:
        return self._messages.get(int(message_id))

    def original_message(self, interaction_id: int | str) -> JSON | None:
        """The ``@original`` message of an interaction (None before type 4/5/6/7)."""
        record = self.interactions.get(int(interaction_id))
        if record is None or record.original_message_id is None:
            return None
        return self._messages.get(record.original_message_id)

    def followups(self, interaction_id: int | str) -> list[JSON]:
        record = self.interactions.get(int(interaction_id))
        if record is None:
            return []
        return [self._messages[m] for m in record.followup_ids if m in self._messages]

    def commands_for(self, guild_id: int | str | None = None) -> list[JSON]:
        """Commands stored by the last bulk overwrite (``None`` = global)."""
        return list(self.commands.get(None if guild_id is None else int(guild_id), []))

    def mark(self) -> int:
        """Current number of recorded requests (pass as ``since=`` to :meth:`wait_for_request`)."""
        return len(self.requests)

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0, *, since: int = 0
    ) -> RecordedRequest:
        """First recorded request (index >= ``since``) matching ``predicate``; waits if needed."""

        def find() -> RecordedRequest | None:
            return next((r for r in self.requests[since:] if predicate(r)), None)

        return await self._wait_until(find, timeout, "a matching request")

    async def wait_for_callback(
        self, interaction_id: int | str, timeout: float = 5.0, *, accepted: bool = True
    ) -> CallbackRecord:
        """First (accepted, by default) callback for the interaction."""
        iid = int(interaction_id)

        def find() -> CallbackRecord | None:
            record = self.interactions.get(iid)
            if record is None:
                return None
            return next((c for c in record.callbacks if c.accepted or not accepted), None)

        return await self._wait_until(find, timeout, f"a callback for interaction {iid}")

    async def wait_delivered(
        self, interaction_id: int | str, timeout: float = 10.0
    ) -> InteractionRecord:
        iid = int(interaction_id)

        def find() -> InteractionRecord | None:
            record = self.interactions.get(iid)
            return record if record is not None and record.delivered_at is not None else None

        return await self._wait_until(find, timeout, f"delivery of interaction {iid}")

    async def wait_ready(
        self, timeout: float = 10.0, *, count: int | None = None
    ) -> GatewayConnection:
        """Waits until a live connection got READY (+ GUILD_CREATEs); ``count`` = total READYs seen.

        Note discord.py fires ``on_ready`` only ``guild_ready_timeout`` (default 2 s) after the
        last GUILD_CREATE; use ``client.wait_until_ready()`` for the client's side.
        """
        need = count or 1

        def find() -> GatewayConnection | None:
            if self.ready_count < need:
                return None
            live = [c for c in self.connections if c.live and c.ready]
            return live[-1] if live else None

        return await self._wait_until(find, timeout, "a READY gateway connection")

    async def wait_disconnected(self, timeout: float = 10.0) -> None:
        """Waits until no gateway connection is open."""

        def find() -> bool | None:
            return True if not any(c.live for c in self.connections) else None

        await self._wait_until(find, timeout, "all gateway connections to close")

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "a condition"
    ) -> None:
        """Waits until ``predicate()`` is true; re-checked whenever the fake records anything."""

        def find() -> bool | None:
            return True if predicate() else None

        await self._wait_until(find, timeout, what)

    def inject_fault(
        self,
        path_pattern: str,
        *,
        method: str | None = None,
        status: int = 500,
        code: int = 0,
        message: str = "",
        times: int = 1,
        retry_after: float | None = None,
        is_global: bool = False,
    ) -> None:
        """Answers the next ``times`` API requests matching ``path_pattern`` with an error.

        ``path_pattern`` is a regex searched in the API-relative path (``/channels/1/messages``,
        ``/webhooks/APP/TOKEN/messages/@original`` ...); ``method`` narrows it.

        ``status=429`` sends Discord's rate-limit body and the ``Via`` header discord.py needs to
        treat it as a rate limit (without ``Via`` it assumes a Cloudflare ban and raises).
        Beware: discord.py retries 500/502/504 itself (sleeping 1, 3, 5... s).
        """
        self._faults.append(
            _Fault(
                re.compile(path_pattern),
                method.upper() if method else None,
                status,
                code,
                message,
                retry_after,
                is_global,
                times,
            )
        )

    async def _wait_until(self, find: Callable[[], T | None], timeout: float, what: str) -> T:
        assert self._changed is not None, "FakeDiscord is not started"
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = find()
                    if found is not None:
                        return found
                    event = self._changed
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None

    def _notify(self) -> None:
        if self._changed is not None:
            event, self._changed = self._changed, asyncio.Event()
            event.set()

    # ------------------------------------------------------------------ interaction builders

    def _resolve_context(
        self,
        user: FakeUser | None,
        guild_id: int | str | None,
        channel_id: int | str | None,
        dm: bool,
    ) -> tuple[FakeUser, FakeGuild | None, JSON, int, int]:
        user = user or self.member
        if dm:
            channel = self.dm_channel(user)
            perms = (
                Perm.VIEW_CHANNEL
                | Perm.SEND_MESSAGES
                | Perm.EMBED_LINKS
                | Perm.ATTACH_FILES
                | Perm.READ_MESSAGE_HISTORY
                | Perm.USE_EXTERNAL_EMOJIS
                | Perm.ADD_REACTIONS
            )
            return user, None, channel, perms, perms
        guild = self.get_guild(guild_id) if guild_id is not None else None
        if guild is None and channel_id is not None:
            found = self._channel(int(channel_id))
            guild = found[0] if found else None
        guild = guild or self.guild
        channel_obj = (
            guild.channel(int(channel_id)) if channel_id is not None else guild.channels[0]
        )
        if channel_obj is None:
            raise ValueError(f"channel {channel_id} is not in guild {guild.id}")
        if guild.member(user.id) is None:
            raise ValueError(f"user {user.username} is not a member of guild {guild.name}")
        perms = guild.channel_permissions(user.id, channel_obj.id)
        app_perms = guild.channel_permissions(self.bot_user.id, channel_obj.id)
        return user, guild, channel_obj.to_dict(), perms, app_perms

    def _interaction(
        self,
        itype: int,
        data: JSON,
        *,
        user: FakeUser | None,
        guild_id: int | str | None,
        channel_id: int | str | None,
        locale: str,
        dm: bool = False,
        message: JSON | None = None,
    ) -> JSON:
        user, guild, channel, perms, app_perms = self._resolve_context(
            user, guild_id, channel_id, dm
        )
        iid = self._ids.next()
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": f"fake-interaction-{iid}-{secrets.token_urlsafe(24)}",
            "version": 1,
            "channel_id": channel["id"],
            "channel": {**channel, "permissions": str(perms)},
            "app_permissions": str(app_perms),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": guild.upload_limit(self.upload_limit)
            if guild
            else self.upload_limit,
        }
        if guild is not None:
            member = guild.member(user.id)
            assert member is not None
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild": {
                        "id": str(guild.id),
                        "locale": guild.preferred_locale,
                        "features": list(guild.features),
                    },
                    "guild_locale": guild.preferred_locale,
                    "member": {**member.to_dict(), "permissions": str(perms)},
                    "authorizing_integration_owners": {"0": str(guild.id)},
                    "context": 0,
                }
            )
        else:
            payload.update(
                {
                    "user": user.to_dict(),
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 1,
                }
            )
        if message is not None:
            payload["message"] = message
        return payload

    def _command_for(self, name: str, ctype: int, guild_id: int | None) -> JSON | None:
        for scope in (guild_id, None):
            for cmd in self.commands.get(scope, []):
                if cmd.get("name") == name and cmd.get("type", 1) == ctype:
                    return cmd
        return None

    def _command_id(self, name: str, ctype: int, cmd: JSON | None) -> str:
        if cmd is not None:
            return str(cmd["id"])
        return str(self._adhoc_command_ids.setdefault((ctype, name), self._ids.next()))

    def _option_value(self, otype: int, value: Any, resolved: JSON, guild: FakeGuild | None) -> Any:
        if otype == 11:
            if isinstance(value, Mapping):
                att = dict(value)
            else:
                att = dict(self._attachment_objects[int(value)])
            resolved.setdefault("attachments", {})[att["id"]] = att
            return att["id"]
        if otype in (6, 9) and isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.to_dict()
            member = guild.member(value.id) if guild else None
            if member is not None and guild is not None:
                resolved.setdefault("members", {})[str(value.id)] = {
                    **member.to_dict(with_user=False),
                    "permissions": str(guild.base_permissions(value.id)),
                }
            return str(value.id)
        if otype == 7 and isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                "id": str(value.id),
                "name": value.name,
                "type": value.type,
                "nsfw": value.nsfw,
                "parent_id": None,
                "permissions": str(DEFAULT_MEMBER_PERMISSIONS),
            }
            return str(value.id)
        if otype in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_dict()
            return str(value.id)
        return value

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return 4
        if isinstance(value, float):
            return 10
        if isinstance(value, Mapping) and "filename" in value:
            return 11
        if isinstance(value, FakeUser):
            return 6
        if isinstance(value, FakeChannel):
            return 7
        if isinstance(value, FakeRole):
            return 8
        return 3

    def _build_options(
        self,
        schema: list[Any] | None,
        values: Mapping[str, Any],
        resolved: JSON,
        guild: FakeGuild | None,
        focused: str | None = None,
    ) -> list[JSON]:
        by_name = {o["name"]: o for o in schema or [] if isinstance(o, Mapping)}
        out: list[JSON] = []
        for name, value in values.items():
            spec = by_name.get(name)
            if schema is not None and spec is None:
                raise ValueError(
                    f"option {name!r} is not in the synced command (have {sorted(by_name)})"
                )
            otype = int(spec["type"]) if spec else self._infer_type(value)
            choices = spec.get("choices") if spec else None
            if choices and name != focused and value not in [c["value"] for c in choices]:
                raise ValueError(f"{value!r} is not a choice of option {name!r}")
            opt: JSON = {
                "name": name,
                "type": otype,
                "value": self._option_value(otype, value, resolved, guild),
            }
            if name == focused:
                opt["focused"] = True
            out.append(opt)
        if schema is not None and focused is None:
            missing = [
                o["name"]
                for o in schema
                if o.get("required") and o["name"] not in values and o.get("type") not in (1, 2)
            ]
            if missing:
                raise ValueError(f"required options missing: {missing}")
        return out

    def _command_data(
        self,
        name: str,
        options: Mapping[str, Any] | None,
        *,
        itype: int,
        guild_id: int | str | None,
        channel_id: int | str | None,
        dm: bool,
        focused: str | None = None,
    ) -> JSON:
        root, *subs = name.split()
        guild = None
        if not dm:
            guild = self.get_guild(guild_id) if guild_id is not None else None
            if guild is None and channel_id is not None:
                found = self._channel(int(channel_id))
                guild = found[0] if found else None
            guild = guild or self.guild
        cmd = self._command_for(root, 1, guild.id if guild else None)
        schema: list[Any] | None = cmd.get("options", []) if cmd else None
        for sub in subs:
            spec = (
                next((o for o in schema or [] if o.get("name") == sub), None)
                if schema is not None
                else None
            )
            if schema is not None and spec is None:
                raise ValueError(f"sub-command {sub!r} is not in the synced command")
            schema = spec.get("options", []) if spec else None
        resolved: JSON = {}
        built = self._build_options(schema, options or {}, resolved, guild, focused)
        for sub in reversed(subs):
            cmd_sub = cmd and self._find_sub_type(cmd, subs, sub)
            built = [{"name": sub, "type": cmd_sub or 1, "options": built}]
        data: JSON = {"id": self._command_id(root, 1, cmd), "name": root, "type": 1}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return data

    @staticmethod
    def _find_sub_type(cmd: JSON, path: list[str], sub: str) -> int:
        options = cmd.get("options", [])
        for part in path:
            spec = next((o for o in options if o.get("name") == part), None)
            if spec is None:
                return 1
            if part == sub:
                return int(spec.get("type", 1))
            options = spec.get("options", [])
        return 1

    def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        guild_id: int | str | None = None,
        channel_id: int | str | None = None,
        attachments: Mapping[str, Mapping[str, Any]] | None = None,
        locale: str = "en-US",
        dm: bool = False,
    ) -> JSON:
        """An APPLICATION_COMMAND (type 2, CHAT_INPUT) interaction payload.

        ``name`` may contain sub-commands (``"imagine fast"``).  ``options`` maps option names
        to values; option types come from the synced command when there is one (else they
        are inferred: str 3, int 4, bool 5, float 10, attachment dict 11, FakeUser 6,
        FakeChannel 7, FakeRole 8).  Attachment values are objects from
        :meth:`add_attachment` (also accepted via ``attachments=``); they land in
        ``data.resolved.attachments`` with URLs on this fake.  Defaults: user = ``fake.member``,
        channel = ``#general`` of ``fake.guild``.
        """
        values = {**(options or {}), **(attachments or {})}
        data = self._command_data(
            name, values, itype=2, guild_id=guild_id, channel_id=channel_id, dm=dm
        )
        return self._interaction(
            2, data, user=user, guild_id=guild_id, channel_id=channel_id, locale=locale, dm=dm
        )

    def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        user: FakeUser | None = None,
        guild_id: int | str | None = None,
        channel_id: int | str | None = None,
        locale: str = "en-US",
    ) -> JSON:
        """An APPLICATION_COMMAND_AUTOCOMPLETE (type 4) payload with ``focused`` marked."""
        data = self._command_data(
            name,
            options,
            itype=4,
            guild_id=guild_id,
            channel_id=channel_id,
            dm=False,
            focused=focused,
        )
        return self._interaction(
            4, data, user=user, guild_id=guild_id, channel_id=channel_id, locale=locale
        )

    def _fresh_message(self, message: Mapping[str, Any] | int | str) -> JSON:
        if isinstance(message, Mapping):
            stored = self._messages.get(int(message["id"]))
            return dict(stored if stored is not None else message)
        stored = self._messages.get(int(message))
        if stored is None:
            raise ValueError(f"unknown message {message}")
        return dict(stored)

    def component_click(
        self,
        custom_id: str,
        message: Mapping[str, Any] | int | str,
        *,
        user: FakeUser | None = None,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        locale: str = "en-US",
        strict: bool = True,
    ) -> JSON:
        """A MESSAGE_COMPONENT (type 3) payload: ``user`` clicks ``custom_id`` on ``message``.

        ``message`` is a message object or id known to the fake (its latest version is used,
        so pass e.g. ``fake.original_message(iid)``).  ``strict`` checks that the message
        really has a component with that custom_id.  For selects pass ``component_type`` and
        ``values``.
        """
        msg = self._fresh_message(message)
        if strict and not any(cid == custom_id for cid in _custom_ids(msg.get("components", []))):
            raise ValueError(
                f"message {msg['id']} has no component {custom_id!r}; "
                f"has {list(_custom_ids(msg.get('components', [])))}"
            )
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None or component_type in (3, 5, 6, 7, 8):
            data["values"] = list(values or [])
        found = self._channel(int(msg["channel_id"]))
        dm = found is not None and found[0] is None
        return self._interaction(
            3,
            data,
            user=user,
            guild_id=None,
            channel_id=msg["channel_id"],
            locale=locale,
            dm=dm,
            message=msg,
        )

    def modal_submit(
        self,
        custom_id: str,
        fields: Mapping[str, Any],
        *,
        user: FakeUser | None = None,
        guild_id: int | str | None = None,
        channel_id: int | str | None = None,
        locale: str = "en-US",
        message: Mapping[str, Any] | int | str | None = None,
    ) -> JSON:
        """A MODAL_SUBMIT (type 5) payload.

        If the bot opened a modal with this ``custom_id`` (type 9 callback), the submitted
        components mirror its layout (action rows or labels) and the defaults (user,
        channel, ``message`` for modals opened from a button) come from that interaction;
        unknown field ids raise ValueError.  ``fields`` maps text-input custom_ids to values
        (lists of strings for selects, attachment objects for file uploads).
        """
        opened = next(
            (rec for rec, modal in reversed(self._modals) if modal.get("custom_id") == custom_id),
            None,
        )
        modal = next(
            (m for rec, m in reversed(self._modals) if m.get("custom_id") == custom_id), None
        )
        resolved: JSON = {}
        components: list[JSON]
        if modal is not None:
            known = set(_custom_ids(modal.get("components", [])))
            unknown = set(fields) - known
            if unknown:
                raise ValueError(
                    f"modal {custom_id!r} has no inputs {sorted(unknown)}; has {sorted(known)}"
                )
            components = [self._submitted(c, fields, resolved) for c in modal.get("components", [])]
        else:
            components = [
                {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in fields.items()
            ]
        data: JSON = {"custom_id": custom_id, "components": components}
        if resolved:
            data["resolved"] = resolved
        msg: JSON | None = None
        if message is not None:
            msg = self._fresh_message(message)
        elif opened is not None and "message" in opened.payload:
            msg = self._fresh_message(opened.payload["message"])
        if opened is not None:
            user = user or self.users.get(opened.user_id)
            channel_id = channel_id if channel_id is not None else opened.payload.get("channel_id")
            guild_id = guild_id if guild_id is not None else opened.payload.get("guild_id")
        dm = opened is not None and "guild_id" not in opened.payload
        return self._interaction(
            5,
            data,
            user=user,
            guild_id=guild_id,
            channel_id=channel_id,
            locale=locale,
            dm=dm,
            message=msg,
        )

    def _submitted(self, comp: JSON, fields: Mapping[str, Any], resolved: JSON) -> JSON:
        ctype = comp.get("type")
        out: JSON = {"type": ctype}
        if "id" in comp:
            out["id"] = comp["id"]
        if ctype == 1:
            out["components"] = [
                self._submitted(c, fields, resolved) for c in comp.get("components", [])
            ]
        elif ctype == 18:
            out["component"] = self._submitted(comp["component"], fields, resolved)
        elif ctype == 4:
            out["custom_id"] = comp["custom_id"]
            out["value"] = str(fields.get(comp["custom_id"], comp.get("value") or ""))
        elif ctype == 19:
            atts = [dict(a) for a in fields.get(comp["custom_id"], [])]
            for att in atts:
                resolved.setdefault("attachments", {})[att["id"]] = att
            out.update({"custom_id": comp["custom_id"], "values": [a["id"] for a in atts]})
        elif "custom_id" in comp:
            out.update(
                {
                    "custom_id": comp["custom_id"],
                    "values": [str(v) for v in fields.get(comp["custom_id"], [])],
                }
            )
        return out

    def message_context_menu(
        self,
        name: str,
        target_message: Mapping[str, Any] | int | str,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
    ) -> JSON:
        """An APPLICATION_COMMAND payload for a message command (data.type 3, resolved.messages)."""
        msg = self._fresh_message(target_message)
        found = self._channel(int(msg["channel_id"]))
        guild = found[0] if found else None
        cmd = self._command_for(name, 3, guild.id if guild else None)
        data: JSON = {
            "id": self._command_id(name, 3, cmd),
            "name": name,
            "type": 3,
            "target_id": msg["id"],
            "resolved": {"messages": {msg["id"]: msg}},
        }
        if guild is not None:
            data["guild_id"] = str(guild.id)
        return self._interaction(
            2,
            data,
            user=user,
            guild_id=None,
            channel_id=msg["channel_id"],
            locale=locale,
            dm=guild is None,
        )

    # ------------------------------------------------------------------ event delivery

    async def send_interaction(self, payload: JSON) -> JSON:
        """Dispatches INTERACTION_CREATE (queued until a client is READY); returns ``payload``.

        Returns at once; use :meth:`wait_delivered` / :meth:`wait_for_callback` to follow it.
        """
        iid = int(payload["id"])
        if iid in self.interactions:
            raise ValueError(f"interaction {iid} was already sent")
        record = InteractionRecord(payload=payload, queued_at=self.clock())
        self.interactions[iid] = record
        self._by_token[record.token] = record
        await self._deliver("INTERACTION_CREATE", payload)
        return payload

    async def send_message_create(
        self,
        content: str = "",
        *,
        channel_id: int | str | None = None,
        author: FakeUser | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
        mention_bot: bool = False,
        reply_to: Mapping[str, Any] | int | str | None = None,
        reply_ping: bool = True,
        embeds: Sequence[JSON] = (),
    ) -> JSON:
        """Stores a user message and dispatches MESSAGE_CREATE; returns the full message object.

        ``mention_bot`` prefixes ``<@bot>`` and lists the bot in ``mentions``.  ``reply_to``
        (a stored message) sets ``message_reference`` + ``referenced_message`` (type 19); with
        ``reply_ping`` the replied-to author is mentioned, which counts as mentioning the bot
        when it wrote that message.  What a client sees depends on its intents: without
        GUILD_MESSAGES it gets no guild messages; without MESSAGE_CONTENT, content, embeds,
        attachments and components are blanked unless the bot is mentioned or wrote it.
        """
        author = author or self.member
        cid = int(channel_id) if channel_id is not None else self.channel.id
        found = self._channel(cid)
        if found is None:
            raise ValueError(f"unknown channel {cid}")
        guild, _ = found
        mentions: list[FakeUser] = []
        if mention_bot:
            if self.bot_user.mention not in content:
                content = f"{self.bot_user.mention} {content}".strip()
            mentions.append(self.bot_user)
        for uid in _MENTION_RE.findall(content):
            user = self.users.get(int(uid))
            if user is not None and user not in mentions:
                mentions.append(user)
        ref_msg: JSON | None = None
        if reply_to is not None:
            ref_msg = self._fresh_message(reply_to)
            ref_author = self.users.get(int(ref_msg["author"]["id"]))
            if reply_ping and ref_author is not None and ref_author not in mentions:
                mentions.append(ref_author)
        mid = self._ids.next()
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(cid),
            "type": 19 if ref_msg else 0,
            "content": content,
            "author": author.to_dict(),
            "attachments": [
                dict(a, ephemeral=False) if a.get("ephemeral") else dict(a) for a in attachments
            ],
            "embeds": list(embeds),
            "components": [],
            "mentions": [self._mention_obj(u, guild) for u in mentions],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": iso(),
            "edited_timestamp": None,
            "flags": 0,
        }
        if ref_msg is not None:
            msg["message_reference"] = {
                "type": 0,
                "message_id": ref_msg["id"],
                "channel_id": ref_msg["channel_id"],
                "fail_if_not_exists": False,
            }
            if guild is not None:
                msg["message_reference"]["guild_id"] = str(guild.id)
            msg["referenced_message"] = ref_msg
        self._put_message(msg)
        event = dict(msg)
        if guild is not None:
            member = guild.member(author.id)
            event["guild_id"] = str(guild.id)
            if member is not None:
                event["member"] = member.to_dict(with_user=False)
        await self._deliver("MESSAGE_CREATE", event)
        return msg

    def _mention_obj(self, user: FakeUser, guild: FakeGuild | None) -> JSON:
        out = user.to_dict()
        member = guild.member(user.id) if guild else None
        if member is not None:
            out["member"] = member.to_dict(with_user=False)
        return out

    def _target(self, guild_id: int | None) -> GatewayConnection | None:
        for conn in reversed(self.connections):
            if not (conn.live and conn.ready and conn.session):
                continue
            shard_id, count = conn.session.shard
            if guild_id is None or (guild_id >> 22) % count == shard_id:
                return conn
        return None

    @staticmethod
    def _event_guild(t: str, d: JSON) -> int | None:
        gid = d.get("guild_id")
        return int(gid) if gid else None

    async def _deliver(self, t: str, d: JSON) -> bool:
        assert self._delivery_lock is not None, "FakeDiscord is not started"
        async with self._delivery_lock:
            return await self._deliver_locked(t, d, queue=True)

    async def _deliver_locked(self, t: str, d: JSON, *, queue: bool) -> bool:
        conn = self._target(self._event_guild(t, d))
        if conn is None:
            if queue:
                self._pending.append((t, d))
            return False
        assert conn.session is not None
        body = self._filter_for(conn.session, t, d)
        if body is None:
            return True  # the session's intents exclude it: dropped like Discord does
        try:
            await self._dispatch(conn, t, body)
        except ConnectionResetError:
            if queue:
                self._pending.append((t, d))
            return False
        if t == "INTERACTION_CREATE":
            record = self.interactions.get(int(d["id"]))
            if record is not None:
                record.delivered_at = self.clock()
        self._notify()
        return True

    async def _flush_pending_locked(self) -> None:
        pending, self._pending = self._pending, []
        for t, d in pending:
            await self._deliver_locked(t, d, queue=True)

    def _filter_for(self, session: _Session, t: str, d: JSON) -> JSON | None:
        if t != "MESSAGE_CREATE":
            return d
        in_guild = "guild_id" in d
        if in_guild and not session.intents & Intents.GUILD_MESSAGES:
            return None
        if not in_guild and not session.intents & Intents.DIRECT_MESSAGES:
            return None
        if session.intents & Intents.MESSAGE_CONTENT:
            return d
        return self._redact(d)

    def _redact(self, msg: JSON) -> JSON:
        """Blanks content fields the way Discord does for apps without MESSAGE_CONTENT."""
        out = dict(msg)
        if "referenced_message" in out and isinstance(out["referenced_message"], dict):
            out["referenced_message"] = self._redact(out["referenced_message"])
        visible = (
            out.get("author", {}).get("id") == str(self.bot_user.id)
            or any(m.get("id") == str(self.bot_user.id) for m in out.get("mentions", []))
            or str(out.get("channel_id")) in {str(k) for k in self._dm_channels}
        )
        if not visible:
            out.update({"content": "", "embeds": [], "attachments": [], "components": []})
            out.pop("poll", None)
        return out

    # ------------------------------------------------------------------ gateway

    async def request_reconnect(self) -> None:
        """Sends op 7 RECONNECT to every live connection (discord.py then RESUMEs)."""
        for conn in list(self.connections):
            if conn.live:
                with contextlib.suppress(ConnectionResetError):
                    await conn.send({"op": 7, "d": None})

    async def drop_connections(self, code: int = 4000) -> None:
        """Closes every live connection from the server side (4000 = resumable for discord.py)."""
        for conn in list(self.connections):
            if conn.live:
                async with asyncio.timeout(5):
                    await conn.close(code, "Fake Discord dropped the connection.")

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Sends op 9 INVALID_SESSION to every live connection."""
        for conn in list(self.connections):
            if conn.live:
                if conn.session is not None and not resumable:
                    conn.session.resumable = False
                with contextlib.suppress(ConnectionResetError):
                    await conn.send({"op": 9, "d": resumable})

    async def _dispatch(self, conn: GatewayConnection, t: str, d: JSON) -> None:
        session = conn.session
        assert session is not None
        session.seq += 1
        frame = {"op": 0, "t": t, "s": session.seq, "d": d}
        session.history.append(frame)
        await conn.send(frame)

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws, request.query)
        self.connections.append(conn)
        self._notify()
        try:
            if conn.query.get("v", "10") not in ("9", "10"):
                await conn.close(4012)
                return ws
            if conn.query.get("encoding", "json") != "json":
                await conn.close(4002, "The fake gateway only speaks encoding=json.")
                return ws
            await conn.send(
                {
                    "op": 10,
                    "d": {
                        "heartbeat_interval": self.heartbeat_interval_ms,
                        "_trace": ['["fake-gateway",{"micros":0}]'],
                    },
                }
            )
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                raw = (
                    msg.data if msg.type is WSMsgType.TEXT else msg.data.decode("utf-8", "replace")
                )
                try:
                    frame = json.loads(raw)
                    if not isinstance(frame, dict):
                        raise ValueError("frame is not an object")
                except ValueError:
                    await conn.close(4002)
                    break
                conn.received.append(frame)
                await self._on_gateway_frame(conn, frame)
                if ws.closed:
                    break
        except ConnectionResetError:
            pass
        finally:
            conn.closed = True
            conn.close_code = conn.server_close_code or ws.close_code
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                if conn.server_close_code is None and conn.close_code in (1000, 1001):
                    session.resumable = False  # a clean close ends the session, like Discord
            self._notify()
        return ws

    async def _on_gateway_frame(self, conn: GatewayConnection, frame: JSON) -> None:
        op = frame.get("op")
        d = frame.get("d")
        if op == 1:
            conn.heartbeats += 1
            await conn.send({"op": 11})
        elif op == 2:
            await self._identify(conn, d)
        elif op == 6:
            await self._resume(conn, d)
        elif conn.session is None:
            await conn.close(4003)
        elif op == 3 or op == 4:
            pass  # presence / voice state: accepted and ignored
        elif op == 8:
            await self._request_members(conn, d if isinstance(d, dict) else {})
        else:
            await conn.close(4001)

    async def _identify(self, conn: GatewayConnection, d: Any) -> None:
        if conn.session is not None:
            await conn.close(4005)
            return
        if not isinstance(d, dict) or d.get("token") != self.token:
            await conn.close(4004)
            return
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~Intents.VALID_MASK:
            await conn.close(4013)
            return
        if intents & Intents.PRIVILEGED & ~self.privileged_intents:
            await conn.close(4014)
            return
        shard_raw = d.get("shard") or [0, 1]
        if (
            not isinstance(shard_raw, list)
            or len(shard_raw) != 2
            or not all(isinstance(x, int) for x in shard_raw)
            or not 0 <= shard_raw[0] < shard_raw[1]
        ):
            await conn.close(4010)
            return
        shard = (int(shard_raw[0]), int(shard_raw[1]))
        conn.identify = d
        self.identifies.append(d)
        session = _Session(id=secrets.token_hex(16), intents=intents, shard=shard, identify=d)
        self._sessions[session.id] = session
        conn.session = session
        session.conn = conn
        guilds = [g for g in self.guilds if (g.id >> 22) % shard[1] == shard[0]]
        ready: JSON = {
            "v": 10,
            "user": self.bot_user.to_me_dict(),
            "user_settings": {},
            "session_type": "normal",
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "application": {"id": str(self.application_id), "flags": self._application_flags()},
            "auth": {},
            "_trace": ['["fake-gateway",{"micros":0}]'],
        }
        if "shard" in d:
            ready["shard"] = list(shard)
        assert self._delivery_lock is not None
        async with self._delivery_lock:
            await self._dispatch(conn, "READY", ready)
            for guild in guilds:
                members = (
                    guild.members
                    if intents & Intents.GUILD_PRESENCES
                    else [m for m in guild.members if m.user.id == self.bot_user.id]
                )
                await self._dispatch(conn, "GUILD_CREATE", guild.to_create_dict(members=members))
            conn.ready = True
            self.ready_count += 1
            self._notify()
            await self._flush_pending_locked()

    async def _resume(self, conn: GatewayConnection, d: Any) -> None:
        if not isinstance(d, dict) or d.get("token") != self.token:
            await conn.close(4004)
            return
        session = self._sessions.get(str(d.get("session_id")))
        if (
            not self.allow_resume
            or session is None
            or not session.resumable
            or (session.conn is not None and session.conn.live)
        ):
            self.refused_resumes += 1
            await conn.send({"op": 9, "d": False})
            return
        seq = d.get("seq") or 0
        conn.session = session
        conn.identify = session.identify
        conn.resumed = True
        session.conn = conn
        assert self._delivery_lock is not None
        async with self._delivery_lock:
            for frame in list(session.history):
                if frame["s"] > seq:
                    await conn.send(frame)
            await self._dispatch(conn, "RESUMED", {"_trace": ['["fake-gateway",{"micros":0}]']})
            conn.ready = True
            self.resume_count += 1
            self._notify()
            await self._flush_pending_locked()

    async def _request_members(self, conn: GatewayConnection, d: JSON) -> None:
        guild_ids = d.get("guild_id")
        ids = guild_ids if isinstance(guild_ids, list) else [guild_ids]
        for gid in ids:
            guild = self.get_guild(gid) if gid is not None else None
            if guild is None:
                continue
            members = list(guild.members)
            user_ids = d.get("user_ids")
            if user_ids:
                wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
                members = [m for m in members if m.user.id in wanted]
            else:
                query = str(d.get("query") or "").lower()
                members = [
                    m
                    for m in members
                    if m.user.username.lower().startswith(query)
                    or (m.nick or "").lower().startswith(query)
                ]
                limit = int(d.get("limit") or 0)
                if limit:
                    members = members[:limit]
            chunk: JSON = {
                "guild_id": str(guild.id),
                "members": [m.to_dict() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if d.get("nonce") is not None:
                chunk["nonce"] = d["nonce"]
            await self._dispatch(conn, "GUILD_MEMBERS_CHUNK", chunk)

    def _application_flags(self) -> int:
        flags = 0
        if self.privileged_intents & Intents.GUILD_PRESENCES:
            flags |= 1 << 13
        if self.privileged_intents & Intents.GUILD_MEMBERS:
            flags |= 1 << 15
        if self.privileged_intents & Intents.MESSAGE_CONTENT:
            flags |= 1 << 19
        return flags

    # ------------------------------------------------------------------ HTTP plumbing

    def _build_routes(self) -> list[_Route]:
        table: list[tuple[str, str, Callable[..., Awaitable[tuple[int, Any]]], bool]] = [
            ("GET", "/users/@me", self._r_me, True),
            ("GET", "/users/{user_id}", self._r_user, True),
            ("POST", "/users/@me/channels", self._r_create_dm, True),
            ("GET", "/gateway", self._r_gateway, False),
            ("GET", "/gateway/bot", self._r_gateway_bot, True),
            ("GET", "/oauth2/applications/@me", self._r_application, True),
            ("GET", "/applications/@me", self._r_application, True),
            ("GET", "/applications/{app_id}/commands", self._r_get_commands, True),
            ("PUT", "/applications/{app_id}/commands", self._r_put_commands, True),
            (
                "GET",
                "/applications/{app_id}/guilds/{guild_id}/commands",
                self._r_get_commands,
                True,
            ),
            (
                "PUT",
                "/applications/{app_id}/guilds/{guild_id}/commands",
                self._r_put_commands,
                True,
            ),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._r_callback, False),
            ("POST", "/webhooks/{app_id}/{token}", self._r_followup, False),
            ("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self._r_webhook_get, False),
            (
                "PATCH",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self._r_webhook_edit,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self._r_webhook_delete,
                False,
            ),
            ("GET", "/channels/{channel_id}", self._r_channel, True),
            ("GET", "/channels/{channel_id}/messages", self._r_channel_messages, True),
            ("POST", "/channels/{channel_id}/messages", self._r_channel_send, True),
            (
                "GET",
                "/channels/{channel_id}/messages/{message_id}",
                self._r_channel_get_message,
                True,
            ),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._r_channel_edit, True),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}",
                self._r_channel_delete,
                True,
            ),
            ("POST", "/channels/{channel_id}/typing", self._r_typing, True),
            ("GET", "/guilds/{guild_id}", self._r_guild, True),
            ("GET", "/guilds/{guild_id}/channels", self._r_guild_channels, True),
            ("GET", "/guilds/{guild_id}/roles", self._r_guild_roles, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._r_guild_member, True),
        ]
        routes = []
        for method, template, handler, auth in table:
            regex = re.sub(
                r"\{(\w+)\}",
                r"(?P<\1>[^/]+)",
                re.escape(template).replace(r"\{", "{").replace(r"\}", "}"),
            )
            routes.append(_Route(method, re.compile(f"^{regex}$"), template, handler, auth))
        return routes

    async def _record(self, request: web.Request, path: str) -> RecordedRequest:
        parts: list[RecordedPart] = []
        raw = b""
        body: Any = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                data = bytes(await part.read(decode=False))
                parts.append(
                    RecordedPart(
                        part.name or "", part.filename, part.headers.get("Content-Type"), data
                    )
                )
            for p in parts:
                if p.name == "payload_json":
                    with contextlib.suppress(ValueError):
                        body = json.loads(p.data)
        elif request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                with contextlib.suppress(ValueError):
                    body = json.loads(raw)
        return RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers=dict(request.headers.items()),
            json=body,
            parts=parts,
            raw=raw,
            at=self.clock(),
        )

    def _reply(
        self,
        status: int,
        body: Any,
        *,
        template: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        headers: dict[str, str] = {}
        if template is not None and self.rate_limit_headers:
            headers.update(
                {
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "49",
                    "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
                    "X-RateLimit-Reset-After": "1.000",
                    "X-RateLimit-Bucket": hashlib.md5(template.encode()).hexdigest()[:16],
                }
            )
        headers.update(extra_headers or {})
        if body is None or status == 204:
            return web.Response(status=204 if status < 300 else status, headers=headers)
        headers["Content-Type"] = "application/json"  # exactly: discord.py compares literally
        return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)

    async def _http_handler(self, request: web.Request) -> web.StreamResponse:
        match = _API_RE.match(request.path)
        path = match.group(2) if match else request.path
        rec = await self._record(request, path)
        response: web.StreamResponse
        try:
            if match is None:
                response = self._serve_attachment(request.path)
            else:
                response = await self._route(rec, path)
        except ApiError as err:
            response = self._reply(err.status, err.body())
        rec.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            body = response.body
            if isinstance(body, bytes):
                rec.response = json.loads(body)
        self.requests.append(rec)
        self._notify()
        return response

    async def _route(self, rec: RecordedRequest, path: str) -> web.Response:
        fault = self._take_fault(rec)
        if fault is not None:
            return fault
        method_mismatch = False
        for route in self._routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method != rec.method:
                method_mismatch = True
                continue
            if route.auth and _header(rec.headers, "Authorization") != f"Bot {self.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            status, body = await route.handler(rec, **m.groupdict())
            return self._reply(status, body, template=route.template)
        if method_mismatch:
            raise ApiError(405, 0, "405: Method Not Allowed")
        raise ApiError(404, 0, "404: Not Found")

    def _take_fault(self, rec: RecordedRequest) -> web.Response | None:
        for fault in self._faults:
            if fault.remaining <= 0 or (fault.method and fault.method != rec.method):
                continue
            if not fault.pattern.search(rec.path):
                continue
            fault.remaining -= 1
            if fault.status == 429:
                retry = fault.retry_after if fault.retry_after is not None else 0.1
                body = {
                    "message": fault.message or "You are being rate limited.",
                    "retry_after": retry,
                    "global": fault.is_global,
                    "code": fault.code,
                }
                return self._reply(
                    429,
                    body,
                    extra_headers={
                        "Retry-After": str(max(1, round(retry))),
                        "Via": "1.1 google",
                        "X-RateLimit-Scope": "global" if fault.is_global else "user",
                    },
                )
            return self._reply(
                fault.status, {"message": fault.message or "Injected fault", "code": fault.code}
            )
        return None

    def _serve_attachment(self, path: str) -> web.Response:
        m = re.match(r"^/attachments/(\d+)/([^/]+)$", path)
        if m is None or int(m.group(1)) not in self._attachments:
            return web.Response(status=404, text="Not Found")
        data, filename, content_type = self._attachments[int(m.group(1))]
        if filename != m.group(2):
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, headers={"Content-Type": content_type})

    # ------------------------------------------------------------------ REST: misc

    async def _r_me(self, rec: RecordedRequest) -> tuple[int, Any]:
        return 200, self.bot_user.to_me_dict()

    async def _r_user(self, rec: RecordedRequest, user_id: str) -> tuple[int, Any]:
        user = self.users.get(int(user_id)) if user_id.isdigit() else None
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return 200, user.to_dict()

    async def _r_create_dm(self, rec: RecordedRequest) -> tuple[int, Any]:
        rid = (rec.json or {}).get("recipient_id")
        user = self.users.get(int(rid)) if rid is not None and str(rid).isdigit() else None
        if user is None:
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                Issues([(("recipient_id",), "USER_UNKNOWN", "Unknown user")]).tree(),
            )
        return 200, self.dm_channel(user)

    async def _r_gateway(self, rec: RecordedRequest) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _r_gateway_bot(self, rec: RecordedRequest) -> tuple[int, Any]:
        return 200, {
            "url": self.gateway_url,
            "shards": self.shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    async def _r_application(self, rec: RecordedRequest) -> tuple[int, Any]:
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "Fake application",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": self._application_flags(),
            "owner": self.owner.to_dict(),
            "team": None,
            "bot": self.bot_user.to_dict(),
            "rpc_origins": [],
            "terms_of_service_url": None,
            "privacy_policy_url": None,
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
            "integration_types_config": {"0": {}},
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
        }

    def _check_app(self, app_id: str) -> None:
        if app_id != str(self.application_id):
            raise ApiError(403, 50001, "Missing Access")

    async def _r_get_commands(
        self, rec: RecordedRequest, app_id: str, guild_id: str | None = None
    ) -> tuple[int, Any]:
        self._check_app(app_id)
        return 200, self.commands_for(int(guild_id) if guild_id else None)

    async def _r_put_commands(
        self, rec: RecordedRequest, app_id: str, guild_id: str | None = None
    ) -> tuple[int, Any]:
        self._check_app(app_id)
        gid = int(guild_id) if guild_id else None
        if gid is not None and self.get_guild(gid) is None:
            raise ApiError(404, 10004, "Unknown Guild")
        incoming = validate_commands(rec.json)
        existing = {(c.get("type", 1), c["name"]): c for c in self.commands.get(gid, [])}
        stored: list[JSON] = []
        for cmd in incoming:
            ctype = int(cmd.get("type", 1))
            old = existing.get((ctype, cmd["name"]))
            out: JSON = {
                "id": old["id"] if old else str(self._ids.next()),
                "application_id": str(self.application_id),
                "version": str(self._ids.next()),
                "default_member_permissions": None,
                "type": ctype,
                "name": cmd["name"],
                "name_localizations": None,
                "description": cmd.get("description", "") if ctype == 1 else "",
                "description_localizations": None,
                "dm_permission": True,
                "contexts": None,
                "integration_types": [0],
                "nsfw": False,
                **{k: v for k, v in cmd.items() if k not in ("id", "application_id", "version")},
            }
            if gid is not None:
                out["guild_id"] = str(gid)
            stored.append(out)
        self.commands[gid] = stored
        return 200, stored

    # ------------------------------------------------------------------ REST: messages core

    def _uploads(self, rec: RecordedRequest, limit: int) -> dict[int, RecordedPart]:
        uploads: dict[int, RecordedPart] = {}
        for part in rec.files:
            m = _FILES_FIELD_RE.match(part.name)
            index = int(m.group(1)) if m else len(uploads)
            uploads[index] = part
        for part in uploads.values():
            if len(part.data) > limit:
                raise ApiError(413, 40005, "Request entity too large")
        if len(uploads) > self.max_attachments:
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                Issues(
                    [
                        (
                            ("attachments",),
                            "BASE_TYPE_MAX_LENGTH",
                            f"Must be {self.max_attachments} or fewer in length.",
                        )
                    ]
                ).tree(),
            )
        return uploads

    def _attachments_for(
        self,
        body: Mapping[str, Any],
        uploads: dict[int, RecordedPart],
        existing: list[JSON],
        *,
        ephemeral: bool,
    ) -> list[JSON]:
        entries = body.get("attachments")
        result: list[JSON] = []
        used: set[int] = set()
        issues = Issues()
        if entries is None:
            result = list(existing)
        else:
            by_id = {a["id"]: a for a in existing}
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                eid = str(entry.get("id")) if isinstance(entry, Mapping) else None
                if eid is None:
                    continue
                if eid in by_id:
                    result.append(by_id[eid])
                elif eid.isdigit() and int(eid) in uploads:
                    part = uploads[int(eid)]
                    used.add(int(eid))
                    result.append(
                        self._store_attachment(
                            part.data,
                            str(entry.get("filename") or part.filename),
                            part.content_type,
                            ephemeral=ephemeral,
                            description=entry.get("description"),
                        )
                    )
                else:
                    issues.add(
                        ["attachments", i, "id"], "ATTACHMENT_NOT_FOUND", "Unknown attachment"
                    )
        for index in sorted(uploads):
            if index not in used:
                part = uploads[index]
                result.append(
                    self._store_attachment(
                        part.data, str(part.filename), part.content_type, ephemeral=ephemeral
                    )
                )
        if len(result) > self.max_attachments:
            issues.add(
                ["attachments"],
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {self.max_attachments} or fewer in length.",
            )
        issues.raise_if_any()
        return result

    def _put_message(self, msg: JSON, *, ephemeral: bool = False) -> None:
        mid = int(msg["id"])
        if mid not in self._messages:
            self._message_order.append(mid)
        self._messages[mid] = msg
        if ephemeral:
            self._ephemeral.add(mid)

    def _new_message(
        self,
        channel_id: str,
        body: Mapping[str, Any],
        uploads: dict[int, RecordedPart],
        *,
        interaction: InteractionRecord | None = None,
        loading: bool = False,
    ) -> JSON:
        flags_in = body.get("flags") or 0
        flags_in = flags_in if isinstance(flags_in, int) else 0
        ephemeral = bool(flags_in & MESSAGE_FLAG_EPHEMERAL)
        flags = flags_in & (MESSAGE_FLAG_EPHEMERAL | MESSAGE_FLAG_COMPONENTS_V2 | 4 | 4096)
        if loading:
            flags |= MESSAGE_FLAG_LOADING
        found = self._channel(int(channel_id))
        guild = found[0] if found else None
        mid = self._ids.next()
        content = body.get("content") or ""
        mentions = [
            self._mention_obj(u, guild)
            for uid in dict.fromkeys(_MENTION_RE.findall(content))
            if (u := self.users.get(int(uid))) is not None
        ]
        msg: JSON = {
            "id": str(mid),
            "channel_id": channel_id,
            "type": 0,
            "content": content,
            "author": self.bot_user.to_dict(),
            "attachments": self._attachments_for(body, uploads, [], ephemeral=ephemeral),
            "embeds": list(body.get("embeds") or []),
            "components": _with_component_ids(list(body.get("components") or [])),
            "mentions": mentions,
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": bool(body.get("tts", False)),
            "timestamp": iso(),
            "edited_timestamp": None,
            "flags": flags,
        }
        if body.get("poll"):
            msg["poll"] = body["poll"]
        if interaction is not None:
            data = interaction.payload.get("data") or {}
            user = (interaction.payload.get("member") or {}).get("user") or interaction.payload.get(
                "user"
            )
            if interaction.type == 2:
                msg["type"] = 20 if data.get("type", 1) == 1 else 23
            elif interaction.type == 3 and not loading:
                msg["type"] = 0
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
            metadata: JSON = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if interaction.original_message_id is not None:
                metadata["original_response_message_id"] = str(interaction.original_message_id)
            if interaction.type == 3 and "message" in interaction.payload:
                metadata["interacted_message_id"] = interaction.payload["message"]["id"]
            msg["interaction_metadata"] = metadata
            if interaction.type == 2:
                msg["interaction"] = {
                    "id": str(interaction.id),
                    "type": 2,
                    "name": data.get("name", ""),
                    "user": user,
                }
        self._put_message(msg, ephemeral=ephemeral)
        return msg

    def _edit_message(
        self, msg: JSON, body: Mapping[str, Any], uploads: dict[int, RecordedPart]
    ) -> JSON:
        check_message_body(body, creating=False, has_files=bool(uploads))
        ephemeral = int(msg["id"]) in self._ephemeral
        new = dict(msg)
        if "content" in body:
            new["content"] = body["content"] or ""
        for key in ("embeds", "components"):
            if key in body:
                value = list(body[key] or [])
                new[key] = _with_component_ids(value) if key == "components" else value
        if body.get("flags") is not None and isinstance(body["flags"], int):
            keep = new.get("flags", 0) & (MESSAGE_FLAG_EPHEMERAL | MESSAGE_FLAG_COMPONENTS_V2)
            new["flags"] = keep | (body["flags"] & (4 | MESSAGE_FLAG_COMPONENTS_V2))
        if "attachments" in body or uploads:
            new["attachments"] = self._attachments_for(
                body, uploads, list(msg.get("attachments", [])), ephemeral=ephemeral
            )
        was_loading = bool(new.get("flags", 0) & MESSAGE_FLAG_LOADING)
        new["flags"] = new.get("flags", 0) & ~MESSAGE_FLAG_LOADING
        if not (
            new.get("content")
            or new.get("embeds")
            or new.get("attachments")
            or new.get("components")
            or new.get("poll")
        ):
            raise ApiError(400, 50006, "Cannot send an empty message")
        if not was_loading:
            new["edited_timestamp"] = iso()
        self._put_message(new, ephemeral=ephemeral)
        return new

    def _limit_for_channel(self, channel_id: str | int) -> int:
        found = self._channel(int(channel_id))
        guild = found[0] if found else None
        return guild.upload_limit(self.upload_limit) if guild else self.upload_limit

    # ------------------------------------------------------------------ REST: interactions

    _ALLOWED_CALLBACKS: Final[Mapping[int, frozenset[int]]] = {
        1: frozenset({1}),
        2: frozenset({4, 5, 9}),
        3: frozenset({4, 5, 6, 7, 9}),
        4: frozenset({8}),
        5: frozenset({4, 5, 6, 7}),
    }

    async def _r_callback(
        self, rec: RecordedRequest, interaction_id: str, token: str
    ) -> tuple[int, Any]:
        record = self.interactions.get(int(interaction_id)) if interaction_id.isdigit() else None
        body = rec.json if isinstance(rec.json, dict) else {}
        now = self.clock()
        cb = CallbackRecord(
            interaction_id=int(interaction_id) if interaction_id.isdigit() else 0,
            type=body.get("type") if isinstance(body.get("type"), int) else None,
            data=body.get("data"),
            files=rec.files,
            at=now,
            latency=(now - record.delivered_at)
            if record and record.delivered_at is not None
            else None,
        )
        if record is not None:
            record.callbacks.append(cb)
        try:
            status, out = self._callback(record, token, body, rec, now)
        except ApiError as err:
            cb.status, cb.error_code = err.status, err.code
            raise
        cb.status = status
        return status, out

    def _callback(
        self,
        record: InteractionRecord | None,
        token: str,
        body: JSON,
        rec: RecordedRequest,
        now: float,
    ) -> tuple[int, Any]:
        if record is None or record.token != token or record.delivered_at is None:
            raise ApiError(404, 10062, "Unknown interaction")
        if record.ack_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if self.ack_deadline is not None and now - record.delivered_at > self.ack_deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        ctype = body.get("type")
        if ctype not in self._ALLOWED_CALLBACKS.get(record.type, frozenset()) or (
            ctype in (6, 7) and "message" not in record.payload
        ):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                Issues(
                    [
                        (
                            ("type",),
                            "INTERACTION_RESPONSE_TYPE_INVALID",
                            "Interaction response type is invalid for this interaction",
                        )
                    ]
                ).tree(),
            )
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        channel_id = str(record.payload["channel_id"])
        message: JSON | None = None
        if ctype in (4, 7):
            uploads = self._uploads(
                rec, int(record.payload.get("attachment_size_limit", self.upload_limit))
            )
            self._check_callback_message(data, creating=ctype == 4, uploads=uploads)
            if ctype == 4:
                message = self._new_message(channel_id, data, uploads, interaction=record)
            else:
                target = self._messages.get(int(record.payload["message"]["id"]))
                if target is None:  # a message the test built by hand: adopt it
                    target = dict(record.payload["message"])
                    self._put_message(target)
                message = self._edit_message(target, data, uploads)
            record.original_message_id = int(message["id"])
        elif ctype == 5:
            flags = data.get("flags") or 0
            message = self._new_message(
                channel_id, {"flags": flags}, {}, interaction=record, loading=True
            )
            record.original_message_id = int(message["id"])
        elif ctype == 6:
            msg = record.payload["message"]
            if int(msg["id"]) not in self._messages:
                self._put_message(dict(msg))
            record.original_message_id = int(msg["id"])
        elif ctype == 8:
            choices = data.get("choices")
            issues = Issues()
            if not isinstance(choices, list):
                issues.add(["data", "choices"], "BASE_TYPE_REQUIRED", "This field is required")
            else:
                issues.max_items(["data", "choices"], choices, 25)
            issues.raise_if_any()
            record.autocomplete_choices = list(choices or [])
        elif ctype == 9:
            check_modal(data)
            self._modals.append((record, data))
        record.ack_type = int(ctype) if isinstance(ctype, int) else None
        record.acked_at = now
        self._notify()
        if (
            message is not None
            and ctype in (4, 5)
            and not (message["flags"] & MESSAGE_FLAG_EPHEMERAL)
        ):
            self._spawn(self._echo(message))
        if rec.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        interaction: JSON = {"id": str(record.id), "type": record.type}
        if message is not None:
            interaction.update(
                {
                    "response_message_id": message["id"],
                    "response_message_loading": bool(message["flags"] & MESSAGE_FLAG_LOADING),
                    "response_message_ephemeral": bool(message["flags"] & MESSAGE_FLAG_EPHEMERAL),
                }
            )
        out: JSON = {"interaction": interaction}
        if message is not None:
            out["resource"] = {"type": ctype, "message": message}
        return 200, out

    @staticmethod
    def _check_callback_message(
        data: JSON, *, creating: bool, uploads: dict[int, RecordedPart]
    ) -> None:
        try:
            check_message_body(data, creating=creating, has_files=bool(uploads))
        except ApiError as err:
            if err.errors:
                err.errors = {"data": err.errors}
            raise

    def _webhook_record(self, app_id: str, token: str) -> InteractionRecord:
        if app_id != str(self.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        record = self._by_token.get(token)
        now = self.clock()
        if record is None or record.delivered_at is None:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if now - record.delivered_at > self.token_lifetime:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if record.ack_type is None:
            if self.ack_deadline is not None and now - record.delivered_at > self.ack_deadline:
                raise ApiError(401, 50027, "Invalid Webhook Token")
            raise ApiError(404, 10015, "Unknown Webhook")
        return record

    def _webhook_message(self, record: InteractionRecord, message_id: str) -> JSON:
        if message_id == "@original":
            mid = record.original_message_id
        elif message_id.isdigit() and (
            int(message_id) in record.followup_ids or int(message_id) == record.original_message_id
        ):
            mid = int(message_id)
        else:
            mid = None
        msg = self._messages.get(mid) if mid is not None else None
        if msg is None:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _r_webhook_get(
        self, rec: RecordedRequest, app_id: str, token: str, message_id: str
    ) -> tuple[int, Any]:
        record = self._webhook_record(app_id, token)
        return 200, self._webhook_message(record, message_id)

    async def _r_webhook_edit(
        self, rec: RecordedRequest, app_id: str, token: str, message_id: str
    ) -> tuple[int, Any]:
        record = self._webhook_record(app_id, token)
        msg = self._webhook_message(record, message_id)
        uploads = self._uploads(
            rec, int(record.payload.get("attachment_size_limit", self.upload_limit))
        )
        body = rec.json if isinstance(rec.json, dict) else {}
        return 200, self._edit_message(msg, body, uploads)

    async def _r_webhook_delete(
        self, rec: RecordedRequest, app_id: str, token: str, message_id: str
    ) -> tuple[int, Any]:
        record = self._webhook_record(app_id, token)
        msg = self._webhook_message(record, message_id)
        self._messages.pop(int(msg["id"]), None)
        return 204, None

    async def _r_followup(self, rec: RecordedRequest, app_id: str, token: str) -> tuple[int, Any]:
        record = self._webhook_record(app_id, token)
        body = rec.json if isinstance(rec.json, dict) else {}
        uploads = self._uploads(
            rec, int(record.payload.get("attachment_size_limit", self.upload_limit))
        )
        check_message_body(body, creating=True, has_files=bool(uploads))
        original = (
            self._messages.get(record.original_message_id)
            if record.original_message_id is not None
            else None
        )
        if (
            record.ack_type == 5
            and original is not None
            and original.get("flags", 0) & MESSAGE_FLAG_LOADING
        ):
            # Discord: the first followup after a deferred response edits the loading message
            # (its ephemeral flag is ignored).
            msg = self._edit_message(
                original, {k: v for k, v in body.items() if k != "flags"}, uploads
            )
        else:
            msg = self._new_message(
                str(record.payload["channel_id"]), body, uploads, interaction=record
            )
            record.followup_ids.append(int(msg["id"]))
            if not msg["flags"] & MESSAGE_FLAG_EPHEMERAL:
                self._spawn(self._echo(msg))
        if rec.query.get("wait") in ("0", "false", "False"):
            return 204, None
        return 200, msg

    # ------------------------------------------------------------------ REST: channels & guilds

    def _channel_or_404(self, channel_id: str) -> tuple[FakeGuild | None, JSON]:
        found = self._channel(int(channel_id)) if channel_id.isdigit() else None
        if found is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return found

    def _bot_perms(self, guild: FakeGuild | None, channel_id: str) -> int:
        if guild is None:
            return (
                Perm.VIEW_CHANNEL
                | Perm.SEND_MESSAGES
                | Perm.ATTACH_FILES
                | Perm.EMBED_LINKS
                | Perm.READ_MESSAGE_HISTORY
            )
        return guild.channel_permissions(self.bot_user.id, int(channel_id))

    def _for_rest(self, msg: JSON) -> JSON:
        return msg if self.privileged_intents & Intents.MESSAGE_CONTENT else self._redact(msg)

    async def _echo(self, msg: JSON) -> None:
        if not self.echo_messages:
            return
        event = dict(msg)
        found = self._channel(int(msg["channel_id"]))
        if found is not None and found[0] is not None:
            guild = found[0]
            event["guild_id"] = str(guild.id)
            member = guild.member(self.bot_user.id)
            if member is not None:
                event["member"] = member.to_dict(with_user=False)
        assert self._delivery_lock is not None
        with contextlib.suppress(Exception):
            async with self._delivery_lock:
                await self._deliver_locked("MESSAGE_CREATE", event, queue=False)

    async def _r_channel(self, rec: RecordedRequest, channel_id: str) -> tuple[int, Any]:
        guild, channel = self._channel_or_404(channel_id)
        if not self._bot_perms(guild, channel_id) & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        return 200, channel

    async def _r_channel_messages(self, rec: RecordedRequest, channel_id: str) -> tuple[int, Any]:
        guild, _ = self._channel_or_404(channel_id)
        perms = self._bot_perms(guild, channel_id)
        if not perms & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        if not perms & Perm.READ_MESSAGE_HISTORY:
            return 200, []
        limit = int(rec.query.get("limit", "50"))
        msgs = list(reversed(self.messages_in(channel_id)))[:limit]
        return 200, [self._for_rest(m) for m in msgs]

    async def _r_channel_send(self, rec: RecordedRequest, channel_id: str) -> tuple[int, Any]:
        guild, _ = self._channel_or_404(channel_id)
        perms = self._bot_perms(guild, channel_id)
        if not perms & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        if not perms & Perm.SEND_MESSAGES:
            raise ApiError(403, 50013, "Missing Permissions")
        uploads = self._uploads(rec, self._limit_for_channel(channel_id))
        if uploads and not perms & Perm.ATTACH_FILES:
            raise ApiError(403, 50013, "Missing Permissions")
        body = rec.json if isinstance(rec.json, dict) else {}
        check_message_body(body, creating=True, has_files=bool(uploads))
        if body.get("flags") and body["flags"] & MESSAGE_FLAG_EPHEMERAL:
            body = {**body, "flags": body["flags"] & ~MESSAGE_FLAG_EPHEMERAL}
        ref = body.get("message_reference")
        referenced: JSON | None = None
        if isinstance(ref, dict) and ref.get("message_id") is not None:
            referenced = self._messages.get(int(ref["message_id"]))
            if referenced is None and ref.get("fail_if_not_exists", True):
                raise ApiError(
                    400,
                    50035,
                    "Invalid Form Body",
                    Issues(
                        [
                            (
                                ("message_reference",),
                                "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                "Unknown message",
                            )
                        ]
                    ).tree(),
                )
        msg = self._new_message(channel_id, body, uploads)
        if referenced is not None:
            msg["type"] = 19
            msg["message_reference"] = {
                "type": 0,
                "message_id": referenced["id"],
                "channel_id": referenced["channel_id"],
                "fail_if_not_exists": False,
            }
            if guild is not None:
                msg["message_reference"]["guild_id"] = str(guild.id)
            msg["referenced_message"] = referenced
        self._spawn(self._echo(msg))
        return 200, msg

    def _channel_message(self, channel_id: str, message_id: str) -> JSON:
        msg = self._messages.get(int(message_id)) if message_id.isdigit() else None
        if msg is None or msg["channel_id"] != channel_id or int(message_id) in self._ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _r_channel_get_message(
        self, rec: RecordedRequest, channel_id: str, message_id: str
    ) -> tuple[int, Any]:
        guild, _ = self._channel_or_404(channel_id)
        perms = self._bot_perms(guild, channel_id)
        if not perms & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        if not perms & Perm.READ_MESSAGE_HISTORY:
            raise ApiError(403, 50013, "Missing Permissions")
        return 200, self._for_rest(self._channel_message(channel_id, message_id))

    async def _r_channel_edit(
        self, rec: RecordedRequest, channel_id: str, message_id: str
    ) -> tuple[int, Any]:
        self._channel_or_404(channel_id)
        msg = self._channel_message(channel_id, message_id)
        if msg["author"]["id"] != str(self.bot_user.id):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        uploads = self._uploads(rec, self._limit_for_channel(channel_id))
        body = rec.json if isinstance(rec.json, dict) else {}
        return 200, self._edit_message(msg, body, uploads)

    async def _r_channel_delete(
        self, rec: RecordedRequest, channel_id: str, message_id: str
    ) -> tuple[int, Any]:
        guild, _ = self._channel_or_404(channel_id)
        msg = self._channel_message(channel_id, message_id)
        if (
            msg["author"]["id"] != str(self.bot_user.id)
            and not self._bot_perms(guild, channel_id) & Perm.MANAGE_MESSAGES
        ):
            raise ApiError(403, 50013, "Missing Permissions")
        self._messages.pop(int(message_id), None)
        return 204, None

    async def _r_typing(self, rec: RecordedRequest, channel_id: str) -> tuple[int, Any]:
        self._channel_or_404(channel_id)
        return 204, None

    def _guild_or_404(self, guild_id: str) -> FakeGuild:
        guild = self.get_guild(guild_id) if guild_id.isdigit() else None
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def _r_guild(self, rec: RecordedRequest, guild_id: str) -> tuple[int, Any]:
        guild = self._guild_or_404(guild_id)
        out = guild.to_rest_dict()
        if rec.query.get("with_counts") in ("1", "true", "True"):
            out["approximate_member_count"] = len(guild.members)
            out["approximate_presence_count"] = 0
        return 200, out

    async def _r_guild_channels(self, rec: RecordedRequest, guild_id: str) -> tuple[int, Any]:
        guild = self._guild_or_404(guild_id)
        return 200, [c.to_dict() for c in guild.channels]

    async def _r_guild_roles(self, rec: RecordedRequest, guild_id: str) -> tuple[int, Any]:
        guild = self._guild_or_404(guild_id)
        return 200, [r.to_dict() for r in guild.roles]

    async def _r_guild_member(
        self, rec: RecordedRequest, guild_id: str, user_id: str
    ) -> tuple[int, Any]:
        guild = self._guild_or_404(guild_id)
        member = guild.member(int(user_id)) if user_id.isdigit() else None
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return 200, member.to_dict()


# ======================================================================================
# Helpers
# ======================================================================================


def _zstd_stream() -> Callable[[bytes], bytes] | None:
    """A zstd-stream compressor (one frame, flushed per message), if a zstd module exists.

    Untested here (neither Python 3.14's ``compression.zstd`` nor ``zstandard`` is installed);
    without one the fake answers a ``compress=zstd-stream`` client with text frames.
    """
    with contextlib.suppress(ImportError):
        stdlib = importlib.import_module("compression.zstd")
        compressor = stdlib.ZstdCompressor()
        block = stdlib.ZstdCompressor.FLUSH_BLOCK
        return lambda data: bytes(compressor.compress(data, mode=block))
    with contextlib.suppress(ImportError):
        zstandard = importlib.import_module("zstandard")
        stream = zstandard.ZstdCompressor().compressobj()
        flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        return lambda data: bytes(stream.compress(data) + stream.flush(flush))
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _custom_ids(components: Sequence[Any]) -> Iterator[str]:
    for comp in components:
        if not isinstance(comp, Mapping):
            continue
        if "custom_id" in comp:
            yield str(comp["custom_id"])
        yield from _custom_ids(comp.get("components") or [])
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, Mapping):
                yield from _custom_ids([child])


def _with_component_ids(components: list[Any]) -> list[Any]:
    """Assigns Discord's numeric component ``id``s (depth-first from 1) where missing."""
    counter = 0
    taken = {c.get("id") for c in _walk(components) if isinstance(c.get("id"), int)}

    def assign(comp: Any) -> Any:
        nonlocal counter
        if not isinstance(comp, Mapping):
            return comp
        out = dict(comp)
        if not isinstance(out.get("id"), int):
            counter += 1
            while counter in taken:
                counter += 1
            out["id"] = counter
        if isinstance(out.get("components"), list):
            out["components"] = [assign(c) for c in out["components"]]
        for key in ("accessory", "component"):
            if isinstance(out.get(key), Mapping):
                out[key] = assign(out[key])
        return out

    return [assign(c) for c in components]


def _walk(components: Sequence[Any]) -> Iterator[Mapping[str, Any]]:
    for comp in components:
        if isinstance(comp, Mapping):
            yield comp
            yield from _walk(comp.get("components") or [])
            for key in ("accessory", "component"):
                if isinstance(comp.get(key), Mapping):
                    yield from _walk([comp[key]])


@contextlib.asynccontextmanager
async def running_fake(**kwargs: Any) -> AsyncIterator[FakeDiscord]:
    """``async with running_fake(...) as fake:``: ``FakeDiscord(**kwargs)`` + :func:`pointed_at`."""
    async with FakeDiscord(**kwargs) as fake:
        with pointed_at(fake):
            yield fake
