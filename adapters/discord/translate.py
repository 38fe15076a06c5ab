"""Pure translation for Discord: options to requests, custom ids, reply handles, origins.

No I/O here and no discord.py import: every function takes values and returns values, so
each is easy to test against recorded payloads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.catalog import Catalog, validate
from bot.errors import ReferenceImageError
from bot.models import (
    ImageRequest,
    JobAction,
    Origin,
    ReferenceImage,
    ResultImage,
    parse_request,
)

__all__ = [
    "ACTION_LABELS",
    "BUTTON_TEMPLATE",
    "DEFAULT_UPLOAD_LIMIT",
    "MAX_REFERENCE_BYTES",
    "PLATFORM",
    "ButtonRef",
    "EditModalRef",
    "ImagineModalRef",
    "ReplyHandle",
    "button_id",
    "channel_nsfw",
    "check_attachment",
    "chunk",
    "decode_handle",
    "edit_modal_id",
    "encode_handle",
    "imagine_fields",
    "imagine_modal_id",
    "is_image_attachment",
    "mentions",
    "modal_values",
    "origin_of",
    "parse_button_id",
    "parse_modal_id",
    "prevalidate",
    "ratio_choices",
    "strip_mentions",
    "token_alive",
    "workspace_of",
]

PLATFORM: Final = "discord"
DEFAULT_UPLOAD_LIMIT: Final = 10 * 1024 * 1024
"""Discord's default per-file upload limit (``discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES``)."""
MAX_REFERENCE_BYTES: Final = 20 * 1024 * 1024
"""Largest attachment downloaded as a reference image, bytes (checked before downloading)."""
IMAGES_PER_MESSAGE: Final = 5
"""One action row of buttons per image, and Discord allows 5 rows per message (§3.3)."""
MAX_CUSTOM_ID: Final = 100

ACTION_LABELS: Final[Mapping[JobAction, str]] = {
    JobAction.VARY: "Vary",
    JobAction.UPSCALE: "Upscale 4K",
    JobAction.EDIT: "Edit",
}
BUTTON_TEMPLATE: Final = (
    r"bb:(?P<action>vary|upscale|edit):(?P<job>[A-Za-z0-9_-]{1,40}):(?P<index>[0-9]{1,2})"
)
"""The ``DynamicItem`` template: ``bb:<action>:<job id>:<zero-based image index>``."""
_BUTTON_RE: Final = re.compile(BUTTON_TEMPLATE)
_EDIT_MODAL_RE: Final = re.compile(
    r"bb:editmodal:(?P<job>[A-Za-z0-9_-]{1,40}):(?P<index>[0-9]{1,2})"
)
_IMAGINE_MODAL_RE: Final = re.compile(r"bb:imaginemodal:(?P<message>[0-9]{1,20})")
_MENTION_RE: Final = re.compile(r"<@!?([0-9]{1,20})>")
"""A user mention; snowflakes are at most 20 ASCII digits (``int()`` of any longer run of
digits is refused above 4300 of them)."""
_IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_IMAGE_EXTENSIONS: Final = (".png", ".jpg", ".jpeg", ".webp", ".gif")


# --- custom ids ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ButtonRef:
    """What a result button names: the action, the job and the zero-based image index."""

    action: JobAction
    job_id: str
    index: int


@dataclass(frozen=True, slots=True)
class EditModalRef:
    """The Edit modal of image ``index`` of ``job_id``."""

    job_id: str
    index: int


@dataclass(frozen=True, slots=True)
class ImagineModalRef:
    """The "Imagine from this" modal of a message (its images are the references)."""

    message_id: int


def button_id(action: JobAction, job_id: str, index: int) -> str:
    """``bb:vary:<job>:<index>`` (at most 100 characters, Discord's custom_id limit).

    Raises:
        ValueError: the action has no button, or the id would not match the template.
    """
    if action not in ACTION_LABELS:
        raise ValueError(f"no button for {action!r}")
    custom_id = f"bb:{action.value}:{job_id}:{index}"
    if len(custom_id) > MAX_CUSTOM_ID or _BUTTON_RE.fullmatch(custom_id) is None:
        raise ValueError(f"not a valid button id: {custom_id!r}")
    return custom_id


def parse_button_id(custom_id: str) -> ButtonRef | None:
    """The button a custom id names, or None if it is not one of ours."""
    match = _BUTTON_RE.fullmatch(custom_id)
    if match is None:
        return None
    return ButtonRef(JobAction(match["action"]), match["job"], int(match["index"]))


def edit_modal_id(job_id: str, index: int) -> str:
    """``bb:editmodal:<job>:<index>``."""
    return f"bb:editmodal:{job_id}:{index}"


def imagine_modal_id(message_id: int) -> str:
    """``bb:imaginemodal:<message id>``."""
    return f"bb:imaginemodal:{message_id}"


def parse_modal_id(custom_id: str) -> EditModalRef | ImagineModalRef | None:
    """The modal a submit's custom id names, or None if it is not one of ours."""
    if match := _EDIT_MODAL_RE.fullmatch(custom_id):
        return EditModalRef(match["job"], int(match["index"]))
    if match := _IMAGINE_MODAL_RE.fullmatch(custom_id):
        return ImagineModalRef(int(match["message"]))
    return None


def modal_values(components: Sequence[object]) -> dict[str, str]:
    """Text-input values of a MODAL_SUBMIT's ``data.components``: custom_id -> value.

    Handles both layouts: action rows (type 1) and labels (type 18) around text inputs.
    """
    values: dict[str, str] = {}
    stack = list(components)
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        if isinstance(node.get("components"), list):
            stack.extend(node["components"])
        if isinstance(node.get("component"), Mapping):
            stack.append(node["component"])
        custom_id, value = node.get("custom_id"), node.get("value")
        if isinstance(custom_id, str) and isinstance(value, str):
            values[custom_id] = value
    return values


# --- reply handle ----------------------------------------------------------------------------


class ReplyHandle(BaseModel):
    """How to answer a job, stored opaquely in ``Origin.reply_handle`` (compact JSON).

    Attributes:
        application_id: the application (interaction webhooks are keyed by it).
        token: the interaction token, or None for jobs from a mention (bot-token messages).
        issued_at: when the token was issued, Unix seconds (the interaction's snowflake time).
        channel_id: where to post when the token is dead.
        user_id: the requester (mentioned in channel fallbacks).
        guild_id: the guild, None in DMs.
        message_id: the message to edit: None = the interaction's ``@original``; for a mention
            job, the bot's progress message.
        original_id: the id of the ``@original`` message, to tidy it with the bot token after
            the interaction token expired.
        filesize_limit: per-file upload limit for interaction responses, bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    application_id: int = Field(alias="a")
    token: str | None = Field(None, alias="t")
    issued_at: float = Field(alias="i")
    channel_id: int = Field(alias="c")
    user_id: int = Field(alias="u")
    guild_id: int | None = Field(None, alias="g")
    message_id: int | None = Field(None, alias="m")
    original_id: int | None = Field(None, alias="o")
    filesize_limit: int = Field(DEFAULT_UPLOAD_LIMIT, alias="l")


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
        raise ValueError("not a Discord reply handle") from exc


def token_alive(handle: ReplyHandle, now: float, lifetime: float) -> bool:
    """Whether the interaction token can still be used at ``now`` (Unix seconds).

    Discord: "Interaction tokens are valid for 15 minutes". A margin (a tenth of the
    lifetime, at most 30 s) covers clock skew and the time a request takes.
    """
    if handle.token is None:
        return False
    return now < handle.issued_at + lifetime - min(30.0, lifetime / 10)


def workspace_of(guild_id: int | None, user_id: int) -> str:
    """The workspace of an origin: the guild id, or ``dm:<user id>`` outside guilds."""
    return str(guild_id) if guild_id is not None else f"dm:{user_id}"


# --- requests --------------------------------------------------------------------------------


def imagine_fields(
    *,
    prompt: str,
    model: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    seed: int | None = None,
    count: int | None = None,
    safety: str | None = None,
) -> dict[str, object]:
    """``/imagine`` options as input for :func:`bot.models.parse_request` (None = default).

    Values are passed on as given (a value of the wrong type is refused by
    :func:`bot.models.parse_request` with :class:`bot.errors.InvalidRequest`, naming the
    field); only a text aspect ratio is stripped.
    """
    fields: dict[str, object] = {"prompt": prompt}
    ratio: object = aspect_ratio
    if isinstance(ratio, str):
        ratio = ratio.strip() if ratio else None
    optional: dict[str, object | None] = {
        "model": model,
        "aspect_ratio": ratio,
        "resolution": resolution,
        "seed": seed,
        "number_results": count,
        "safety_tolerance": safety,
    }
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


def is_image_attachment(filename: str, content_type: str | None) -> bool:
    """Whether an attachment looks like a PNG, JPEG, WebP or GIF (by type, else by name)."""
    if content_type:
        return content_type.split(";")[0].strip().lower() in _IMAGE_TYPES
    return filename.lower().endswith(_IMAGE_EXTENSIONS)


def check_attachment(filename: str, content_type: str | None, size: int, index: int) -> None:
    """Cheap checks before downloading a reference (the core checks the bytes again).

    Raises:
        ReferenceImageError: not an image by type or name, or over 20 MiB.
    """
    if not is_image_attachment(filename, content_type):
        raise ReferenceImageError(f"{filename} is not a PNG, JPEG, WebP or GIF image", index)
    if size > MAX_REFERENCE_BYTES:
        raise ReferenceImageError(
            f"{filename} is {size / 1048576:.1f} MiB; the limit is "
            f"{MAX_REFERENCE_BYTES // 1048576} MiB",
            index,
        )


def prevalidate(
    catalog: Catalog, fields: Mapping[str, object], reference_sizes: Sequence[tuple[int, int]]
) -> ImageRequest:
    """Validate a request before any I/O, with placeholders for the references to download.

    Args:
        reference_sizes: (width, height) in pixels of each attachment (0 if unknown).

    Raises:
        InvalidRequest: the first field outside what the model allows (with allowed values).
    """
    placeholders = tuple(
        ReferenceImage(
            media_key="pending", mime_type="image/png", width=w or 1024, height=h or 1024
        )
        for w, h in reference_sizes
    )
    request = parse_request({**fields, "references": placeholders})
    validate(catalog, request)
    return request


def ratio_choices(
    catalog: Catalog, model: str | None, resolution: str | None, current: str
) -> list[str]:
    """Aspect ratios of ``model`` (at ``resolution`` if given) matching ``current``; <= 25."""
    names = [model] if model in catalog.names else list(catalog.names)
    ratios: list[str] = []
    for name in names:
        spec = catalog.model(name)
        for tier in [resolution] if resolution in spec.tiers else list(spec.tiers):
            ratios.extend(r for r in spec.ratios(tier) if r not in ratios)
    wanted = current.strip()
    found = [r for r in ratios if wanted in r]
    return sorted(found, key=lambda r: not r.startswith(wanted))[:25]  # prefixes first


def mentions(content: str, bot_id: int) -> bool:
    """Whether the text mentions the bot explicitly (``<@id>`` or ``<@!id>``)."""
    return any(int(found) == bot_id for found in _MENTION_RE.findall(content))


def strip_mentions(content: str, bot_id: int) -> str:
    """A mention message's prompt: the text without the bot's mentions."""
    return _MENTION_RE.sub(lambda m: "" if int(m[1]) == bot_id else m[0], content).strip()


def chunk(images: Sequence[ResultImage], size: int = IMAGES_PER_MESSAGE) -> list[list[ResultImage]]:
    """Images split into messages of at most ``size`` (5 rows of buttons, <= 10 files)."""
    return [list(images[i : i + size]) for i in range(0, len(images), size)] or [[]]


def channel_nsfw(channel: object) -> bool:
    """The channel's age-restricted flag (threads follow their parent; DMs have none)."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def origin_of(handle: ReplyHandle, nsfw: bool) -> Origin:
    """The core's origin of a Discord job, with ``handle`` as its opaque reply handle."""
    return Origin(
        platform=PLATFORM,
        workspace_id=workspace_of(handle.guild_id, handle.user_id),
        channel_id=str(handle.channel_id),
        user_id=str(handle.user_id),
        reply_handle=encode_handle(handle),
        channel_nsfw=nsfw,
    )
