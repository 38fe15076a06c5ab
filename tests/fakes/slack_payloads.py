"""Workspace objects and records for :mod:`tests.fakes.slack` (users, channels, files, requests).

Everything here is plain data: the server in ``slack.py`` owns the state and the clock.
``to_api()`` methods render the shapes the Web API returns (``users.info``'s ``user``,
``conversations.info``'s ``channel``, a file object with ``url_private`` ...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qsl, quote

from tests.fakes.slack_rules import IMAGE_FILETYPES

__all__ = [
    "LOGIN_PAGE",
    "FakeChannel",
    "FakeClock",
    "FakeFile",
    "FakeUser",
    "Ids",
    "RecordedPart",
    "RecordedRequest",
    "ResponsePost",
    "ResponseUrl",
    "SignedRequest",
    "SignedResponse",
    "Trigger",
    "UploadedFile",
]

JSON = dict[str, Any]

LOGIN_PAGE: Final = """<!DOCTYPE html>
<html lang="en-US" class="supports_custom_scrollbar">
<head>
<meta charset="utf-8">
<title>Slack</title>
<meta name="robots" content="noindex, nofollow">
</head>
<body class="index">
<div id="page"><div id="page_contents">
<h1>Sign in to your workspace</h1>
<p>Enter your workspace's Slack URL.</p>
<form id="signin_form" action="/signin" method="post">
<input type="text" name="domain" placeholder="your-workspace">
<button type="submit" id="submit_team_domain">Continue</button>
</form>
</div></div>
</body>
</html>
"""
"""What ``files.slack.com`` serves for ``url_private`` without a usable token: HTTP 200,
``text/html`` (a sign-in page), not an error status."""


class FakeClock:
    """Fake monotonic time: ``time.monotonic()`` plus :meth:`advance` offsets.

    Call it (``fake.clock()``) for the current value.  Trigger ids, response URLs and the
    "file is still processing" window all use it, so tests can age them without sleeping.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def now(self) -> float:
        return self()

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Ids:
    """Slack-looking ids: ``F0A00001``, ``V0A00002`` ... (prefix + uppercase base 36)."""

    _DIGITS: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def __init__(self) -> None:
        self._n = 0

    def next(self, prefix: str) -> str:
        self._n += 1
        n, out = self._n, ""
        while n:
            n, r = divmod(n, 36)
            out = self._DIGITS[r] + out
        return f"{prefix}0A{out.rjust(6, '0')}"


# ======================================================================================
# Workspace
# ======================================================================================


@dataclass
class FakeUser:
    """A workspace member (``users.info``)."""

    id: str
    name: str
    real_name: str = ""
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    is_restricted: bool = False
    deleted: bool = False
    tz: str = "Europe/Berlin"
    tz_label: str = "Central European Summer Time"
    tz_offset: int = 7200
    bot_id: str | None = None

    def to_api(self, team_id: str) -> JSON:
        real = self.real_name or self.name.title()
        user: JSON = {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": real,
            "tz": self.tz,
            "tz_label": self.tz_label,
            "tz_offset": self.tz_offset,
            "profile": {
                "real_name": real,
                "display_name": self.name,
                "real_name_normalized": real,
                "display_name_normalized": self.name,
                "team": team_id,
                "image_72": f"https://avatars.invalid/{self.id}_72.png",
            },
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
        }
        if self.bot_id:
            user["profile"]["bot_id"] = self.bot_id
        return user


@dataclass
class FakeChannel:
    """A conversation: public/private channel, DM (``is_im``) or group DM (``is_mpim``).

    ``bot_member`` says whether the bot is in it (``chat.postMessage`` answers
    ``not_in_channel`` otherwise, unless the channel is public and ``chat:write.public`` is
    granted); ``members`` are the human members (``chat.postEphemeral`` needs the target
    user among them).
    """

    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    is_archived: bool = False
    bot_member: bool = True
    members: set[str] = field(default_factory=set)
    user: str | None = None
    created: int = 1_700_000_000
    creator: str = ""

    @property
    def channel_type(self) -> str:
        """The ``channel_type`` of message events: channel, group, im or mpim."""
        if self.is_im:
            return "im"
        if self.is_mpim:
            return "mpim"
        return "group" if self.is_private else "channel"

    def to_api(self) -> JSON:
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "user": self.user,
                "is_user_deleted": False,
                "priority": 0,
            }
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private and not self.is_mpim,
            "is_group": self.is_private and not self.is_mpim,
            "is_im": False,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_general": self.name == "general",
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "is_ext_shared": False,
            "context_team_id": None,
            "creator": self.creator,
            "is_member": self.bot_member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "num_members": len(self.members) + (1 if self.bot_member else 0),
        }


@dataclass
class FakeFile:
    """A Slack file: a user file (``fake.add_file``) or one the bot uploaded.

    ``ready_at`` (fake clock) is when an image block may reference it; ``shares`` mirrors
    ``files.info``'s ``shares.public|private[channel] = [{"ts": ..., "thread_ts": ...}]``.
    """

    id: str
    name: str
    title: str
    mimetype: str
    filetype: str
    data: bytes
    user: str
    team_id: str
    base_url: str
    created: int
    ready_at: float
    by_bot: bool = False
    alt_txt: str | None = None
    expected_length: int | None = None
    upload_token: str | None = None
    uploaded: bool = True
    completed: bool = True
    shares: dict[str, dict[str, list[JSON]]] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.filetype in IMAGE_FILETYPES

    @property
    def url_private(self) -> str:
        return f"{self.base_url}/files-pri/{self.team_id}-{self.id}/{quote(self.name)}"

    @property
    def url_private_download(self) -> str:
        return f"{self.base_url}/files-pri/{self.team_id}-{self.id}/download/{quote(self.name)}"

    @property
    def permalink(self) -> str:
        return f"{self.base_url}/files/{self.user}/{self.id}/{quote(self.name)}"

    def to_api(self) -> JSON:
        public = sorted(self.shares.get("public", {}))
        private = sorted(self.shares.get("private", {}))
        obj: JSON = {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title,
            "mimetype": self.mimetype,
            "filetype": self.filetype,
            "pretty_type": self.filetype.upper(),
            "user": self.user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(self.data),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": bool(public),
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": self.url_private,
            "url_private_download": self.url_private_download,
            "permalink": self.permalink,
            "permalink_public": f"{self.base_url}/T-{self.id}-public",
            "channels": public,
            "groups": [c for c in private if not c.startswith("D")],
            "ims": [c for c in private if c.startswith("D")],
            "comments_count": 0,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        if self.alt_txt:
            obj["alt_txt"] = self.alt_txt
        if self.is_image:
            obj["thumb_360"] = self.url_private
            obj["original_w"] = 0
            obj["original_h"] = 0
        if self.shares:
            obj["shares"] = {k: {c: list(v) for c, v in m.items()} for k, m in self.shares.items()}
        return obj


# ======================================================================================
# Records
# ======================================================================================


@dataclass(frozen=True)
class RecordedPart:
    """One multipart part of a request."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """One HTTP request the fake received (``fake.requests``).

    Attributes:
        method: The Web API method (``chat.postMessage``) or, for other routes,
            ``"upload"`` (upload URL), ``"file"`` (``url_private*``), ``"response_url"``.
        http_method: GET / POST.
        path: URL path.
        query: Query parameters (slack-sdk sends ``params=`` methods such as
            ``files.getUploadURLExternal`` and ``auth.test`` as a query string on a POST).
        form: Form fields (urlencoded or non-file multipart fields).
        json: The parsed JSON body (``chat.postMessage``, ``views.open`` ...), or None.
        headers: Request headers (last value wins).
        files: Multipart file parts.
        raw: The raw body.
        token: The bearer token (or ``token`` parameter) the request carried.
        at: ``fake.clock()`` on arrival.
        status / response: What the fake answered (``response`` is the JSON or text).
    """

    method: str
    http_method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    headers: dict[str, str]
    files: list[RecordedPart]
    raw: bytes
    token: str | None
    at: float
    status: int = 0
    response: Any = None

    @property
    def params(self) -> JSON:
        """Query + form + JSON body merged (the way Slack reads arguments)."""
        merged: JSON = {**self.query, **self.form}
        if isinstance(self.json, Mapping):
            merged.update(self.json)
        return merged

    @property
    def ok(self) -> bool | None:
        if isinstance(self.response, Mapping):
            return bool(self.response.get("ok"))
        return None

    @property
    def error(self) -> str | None:
        if isinstance(self.response, Mapping) and not self.response.get("ok", True):
            err = self.response.get("error")
            return str(err) if err is not None else None
        return None


@dataclass
class UploadedFile:
    """A file the bot uploaded (``fake.uploaded``), after ``files.completeUploadExternal``."""

    id: str
    name: str
    title: str
    data: bytes
    mimetype: str
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    alt_txt: str | None
    at: float


@dataclass
class Trigger:
    """A ``trigger_id`` the fake issued; ``views.open`` accepts it once within ``trigger_ttl``."""

    id: str
    user_id: str
    issued_at: float
    exchanged_at: float | None = None


@dataclass
class ResponsePost:
    """One POST to a ``response_url`` (accepted or refused)."""

    url_id: str
    body: Any
    at: float
    status: int
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclass
class ResponseUrl:
    """A ``response_url`` the fake issued (``/response/<id>``): 5 uses within 30 minutes."""

    id: str
    url: str
    kind: str
    user_id: str
    channel_id: str | None
    issued_at: float
    message_ts: str | None = None
    posts: list[ResponsePost] = field(default_factory=list)

    @property
    def uses(self) -> int:
        return sum(1 for p in self.posts if p.accepted)


class SignedRequest(NamedTuple):
    """A request as Slack sends it to an HTTP-mode app: ``body, headers = fake.slash_command()``.

    ``payload`` decodes it: the form fields of a slash command, the JSON inside the
    ``payload=`` field of interactivity requests, or the JSON of an Events API request.
    """

    body: bytes
    headers: dict[str, str]

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def payload(self) -> JSON:
        if self.content_type.startswith("application/json"):
            data = json.loads(self.body)
            return data if isinstance(data, dict) else {}
        form = dict(parse_qsl(self.body.decode(), keep_blank_values=True))
        if set(form) == {"payload"}:
            data = json.loads(form["payload"])
            return data if isinstance(data, dict) else {}
        return form

    @property
    def kind(self) -> str:
        """``slash_commands``, ``interactive`` or ``events_api`` (the Socket Mode envelope type)."""
        if self.content_type.startswith("application/json"):
            return "events_api"
        return "slash_commands" if "command" in self.payload else "interactive"

    def __repr__(self) -> str:  # the body can be long
        return f"SignedRequest(kind={self.kind!r}, bytes={len(self.body)})"


@dataclass
class SignedResponse:
    """What an HTTP-mode app answered to :meth:`FakeSlack.post_signed` (``fake.deliveries``)."""

    url: str
    kind: str
    payload: JSON
    status: int
    headers: dict[str, str]
    body: bytes
    latency: float
    at: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None
