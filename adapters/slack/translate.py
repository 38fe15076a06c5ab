"""Pure translation for Slack: command text to requests, button values, reply handles, mrkdwn.

No I/O here and no slack-sdk import: every function takes values and returns values, so
each is easy to test against recorded payloads. Block Kit builders live in
:mod:`adapters.slack.blocks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.catalog import Catalog, ResolvedSize, validate
from bot.errors import InvalidRequest
from bot.models import ImageRequest, JobAction, Origin, ReferenceImage, parse_request
from bot.policy import TOLERANCE_ORDER

__all__ = [
    "ACTION_IDS",
    "EDIT_CALLBACK",
    "EDIT_INPUT_ACTION",
    "EDIT_INPUT_BLOCK",
    "FLAGS",
    "IMAGE_MIME_TYPES",
    "PLATFORM",
    "USAGE",
    "ActionRef",
    "EditRef",
    "ReplyHandle",
    "action_value",
    "decode_handle",
    "edit_metadata",
    "edit_too_short",
    "encode_handle",
    "escape_mrkdwn",
    "imagine_fields",
    "mentions_bot",
    "origin_for",
    "parse_action",
    "parse_edit_metadata",
    "prevalidate",
    "result_ref",
    "strip_mention",
]

PLATFORM: Final = "slack"

ACTION_IDS: Final[Mapping[JobAction, str]] = {
    JobAction.VARY: "bb_vary",
    JobAction.UPSCALE: "bb_upscale",
    JobAction.EDIT: "bb_edit",
}
"""Button ``action_id`` per action; the button ``value`` is ``<job>:<index>`` only."""
_ACTION_BY_ID: Final = {action_id: action for action, action_id in ACTION_IDS.items()}

EDIT_CALLBACK: Final = "bb_edit_modal"
EDIT_INPUT_BLOCK: Final = "instruction"
EDIT_INPUT_ACTION: Final = "value"

IMAGE_MIME_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
"""Reference image types the core accepts (Slack's ``mimetype`` of a file object)."""

_JOB_ID: Final = r"[A-Za-z0-9_-]{1,40}"
_VALUE_RE: Final = re.compile(rf"(?P<job>{_JOB_ID}):(?P<index>[0-9]{{1,2}})")
_META_RE: Final = re.compile(
    rf"(?P<job>{_JOB_ID}):(?P<index>[0-9]{{1,2}}):(?P<channel>[A-Z0-9]{{1,32}}):"
    r"(?P<thread>[0-9]{1,12}\.[0-9]{1,9})?"
)
_FLAG_RE: Final = re.compile(
    r"(?<!\S)(?:--|—|–)(?P<name>[A-Za-z][\w-]*)"
    r"(?:=(?P<inline>\S*)|[ \t]+(?P<value>(?!--|—|–)\S+))?"
)
"""``--name value`` or ``--name=value``; macOS and iOS turn ``--`` into an em or en dash."""

_MODELS: Final = {
    "pro": "nano-banana-pro",
    "nano-banana-pro": "nano-banana-pro",
    "nbp": "nano-banana-pro",
    "nb2": "nano-banana-2",
    "2": "nano-banana-2",
    "nano-banana-2": "nano-banana-2",
}
_TIERS: Final = ("0.5K", "1K", "2K", "4K")

FLAGS: Final[Mapping[str, str]] = {
    "model": "model",
    "ar": "aspect_ratio",
    "aspect": "aspect_ratio",
    "res": "resolution",
    "resolution": "resolution",
    "seed": "seed",
    "n": "number_results",
    "count": "number_results",
    "safety": "safety_tolerance",
}
"""Flag name -> :class:`bot.models.ImageRequest` field."""
_FLAG_HELP: Final = ("--model", "--ar", "--res", "--seed", "--n", "--safety")

USAGE: Final = (
    "Usage: `/imagine <prompt> [--model pro|nb2] [--ar 16:9] [--res 2K] [--seed N] "
    "[--n 2] [--safety low]`. For reference images, mention @bananabot in a message or "
    "thread with the images."
)


# --- command text -> request -----------------------------------------------------------------


def _flag_value(flag: str, field: str, raw: str) -> object:
    """One flag's value, checked against its allowed values.

    Raises:
        InvalidRequest: naming the flag and the allowed values.
    """
    value = raw.strip().strip("\"'“”‘’")
    if field == "model":
        if value.lower() not in _MODELS:
            raise InvalidRequest("model", f"--{flag} {value} is not a model", ("pro", "nb2"))
        return _MODELS[value.lower()]
    if field == "aspect_ratio":
        if re.fullmatch(r"\d{1,2}:\d{1,2}", value) is None:
            raise InvalidRequest(
                "aspect_ratio",
                f"--{flag} {value} is not an aspect ratio like 16:9",
                ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "..."),
            )
        return value
    if field == "resolution":
        tier = value.upper()
        tier = f"0{tier}" if tier.startswith(".") else tier
        if tier not in _TIERS:
            raise InvalidRequest("resolution", f"--{flag} {value} is not a resolution", _TIERS)
        return tier
    if field == "safety_tolerance":
        if value.lower() not in TOLERANCE_ORDER:
            raise InvalidRequest(
                "safety_tolerance", f"--{flag} {value} is not a safety level", TOLERANCE_ORDER
            )
        return value.lower()
    allowed = ("1..20",) if field == "number_results" else ("0..9223372036854775807",)
    if re.fullmatch(r"\d{1,19}", value) is None:
        raise InvalidRequest(field, f"--{flag} {value} is not a whole number", allowed)
    return int(value)


def imagine_fields(text: str) -> dict[str, object]:
    """``/imagine`` text (``a cat --ar 16:9 --n 2``) as input for :func:`parse_request`.

    Flags may stand anywhere; the rest is the prompt (flag spans removed, spacing kept).

    Raises:
        InvalidRequest: an unknown or repeated flag, a flag without a value, or a value
            that is not allowed (the message names the flag and the allowed values).
    """
    fields: dict[str, object] = {}
    pieces: list[str] = []
    last = 0
    for match in _FLAG_RE.finditer(text):
        name = match["name"].lower()
        raw = match["inline"] if match["inline"] is not None else match["value"]
        field = FLAGS.get(name)
        if field is None:
            raise InvalidRequest("flags", f"--{name} is not a flag /imagine knows", _FLAG_HELP)
        if not raw:
            raise InvalidRequest(field, f"--{name} needs a value", _FLAG_HELP)
        if field in fields:
            raise InvalidRequest(field, f"--{name} was given twice")
        fields[field] = _flag_value(name, field, raw)
        pieces.append(text[last : match.start()])
        last = match.end()
    pieces.append(text[last:])
    prompt = re.sub(r"[ \t]{2,}", " ", " ".join(pieces)).strip()
    return {"prompt": prompt, **fields}


def prevalidate(
    catalog: Catalog,
    fields: Mapping[str, object],
    references: Sequence[ReferenceImage] = (),
    *,
    pending_references: int = 0,
) -> tuple[ImageRequest, ResolvedSize]:
    """Validate a request before any I/O; references not downloaded yet count as 1024x1024.

    Raises:
        InvalidRequest: the first field outside what the model allows (with allowed values).
    """
    placeholders = tuple(
        ReferenceImage(media_key="pending", mime_type="image/png", width=1024, height=1024)
        for _ in range(pending_references)
    )
    request = parse_request({**fields, "references": (*references, *placeholders)})
    return request, validate(catalog, request)


def edit_too_short(instruction: str) -> InvalidRequest | None:
    """The refusal for an Edit instruction under 3 characters (the core's own rule, checked
    here before any I/O: the Edit modal's inline error, a mention in a result's thread)."""
    if len(instruction.strip()) >= 3:
        return None
    return InvalidRequest("prompt", "an edit needs an instruction", ("3..45000 characters",))


# --- mentions --------------------------------------------------------------------------------


def mentions_bot(text: str, bot_user_id: str) -> bool:
    """Whether message text mentions the bot (``<@U123>`` or ``<@U123|name>``)."""
    return (
        bool(bot_user_id) and re.search(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", text) is not None
    )


def strip_mention(text: str, bot_user_id: str) -> str:
    """The prompt of a mention: the text without the bot's mentions."""
    return re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text).strip()


# --- buttons and modals ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionRef:
    """What a result button names: the action, the job and the zero-based image index."""

    action: JobAction
    job_id: str
    index: int


@dataclass(frozen=True, slots=True)
class EditRef:
    """The Edit modal: which image, and where the child job's messages go."""

    job_id: str
    index: int
    channel: str
    thread_ts: str | None


def action_value(job_id: str, index: int) -> str:
    """A button's ``value``: ``<job>:<index>`` (everything else is read from the store)."""
    value = f"{job_id}:{index}"
    if _VALUE_RE.fullmatch(value) is None:
        raise ValueError(f"not a valid button value: {value!r}")
    return value


def parse_action(action_id: str, value: str) -> ActionRef | None:
    """The button a click names, or None if it is not one of ours."""
    action = _ACTION_BY_ID.get(action_id)
    match = _VALUE_RE.fullmatch(value or "")
    if action is None or match is None:
        return None
    return ActionRef(action, match["job"], int(match["index"]))


def result_ref(blocks: Sequence[object]) -> ActionRef | None:
    """The first image a bananabot result message's blocks name (its Edit or Vary button)."""
    for block in blocks:
        if not isinstance(block, Mapping) or block.get("type") != "actions":
            continue
        elements = block.get("elements")
        if not isinstance(elements, Sequence) or isinstance(elements, str):
            continue  # Block Kit sends a list; anything else names no button
        for element in elements:
            if isinstance(element, Mapping):
                ref = parse_action(str(element.get("action_id", "")), str(element.get("value", "")))
                if ref is not None:
                    return ref
    return None


def edit_metadata(ref: EditRef) -> str:
    """The Edit modal's ``private_metadata``: ``<job>:<index>:<channel>:<thread_ts>``."""
    return f"{ref.job_id}:{ref.index}:{ref.channel}:{ref.thread_ts or ''}"


def parse_edit_metadata(text: str) -> EditRef | None:
    """Parse :func:`edit_metadata`; None if it is not one of ours."""
    match = _META_RE.fullmatch(text or "")
    if match is None:
        return None
    return EditRef(match["job"], int(match["index"]), match["channel"], match["thread"])


# --- reply handle ----------------------------------------------------------------------------


class ReplyHandle(BaseModel):
    """How to answer a Slack job, stored opaquely in ``Origin.reply_handle`` (compact JSON).

    Attributes:
        channel: the conversation id (``C…``, ``G…``, ``D…``).
        user: the requester (ephemeral errors go to them).
        thread_ts: the thread the job's messages go in, or None for the channel itself.
        status_ts: the bot's status message, updated with ``chat.update`` and finally
            turned into the result.
        response_url: the slash command's or click's ``response_url`` (5 posts / 30 min).
        response_at: when Slack issued it, Unix seconds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    channel: str = Field(alias="c")
    user: str = Field(alias="u")
    thread_ts: str | None = Field(None, alias="t")
    status_ts: str | None = Field(None, alias="s")
    response_url: str | None = Field(None, alias="r")
    response_at: float | None = Field(None, alias="ra")

    @property
    def upload_thread(self) -> str | None:
        """Where result files go: the job's thread, else the status message's own thread."""
        return self.thread_ts or self.status_ts

    def response_alive(self, now: float, lifetime: float = 1800.0) -> bool:
        """Whether ``response_url`` may still be used (Slack: 30 minutes, with a margin)."""
        return (
            bool(self.response_url)
            and self.response_at is not None
            and (now < self.response_at + lifetime - 30.0)
        )


def encode_handle(handle: ReplyHandle) -> str:
    """The handle as compact JSON (short keys, no nulls)."""
    return handle.model_dump_json(by_alias=True, exclude_none=True)


def decode_handle(text: str) -> ReplyHandle:
    """Parse a handle written by :func:`encode_handle`.

    Raises:
        ValueError: not one of ours.
    """
    try:
        return ReplyHandle.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError("not a Slack reply handle") from exc


def origin_for(team_id: str, handle: ReplyHandle) -> Origin:
    """The core's origin of a Slack job. Slack has no NSFW channel flag: never NSFW."""
    return Origin(
        platform=PLATFORM,
        workspace_id=team_id,
        channel_id=handle.channel,
        user_id=handle.user,
        reply_handle=encode_handle(handle),
        channel_nsfw=False,
    )


# --- text ------------------------------------------------------------------------------------


def escape_mrkdwn(text: str, limit: int = 300) -> str:
    """Text people typed, safe in ``mrkdwn``: ``& < >`` escaped (no mentions, no links),
    whitespace collapsed, truncated to ``limit`` characters (Slack formatting docs)."""
    short = " ".join(text.split())
    if len(short) > limit:
        short = short[: limit - 1] + "…"
    return short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
