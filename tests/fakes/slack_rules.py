"""Slack-side rules for :mod:`tests.fakes.slack`: request signing, Block Kit and modal checks.

Limits follow docs.slack.dev (``reference/block-kit/*``, ``reference/views``) and the
limits encoded in ``slack_sdk.models`` (see /work/shared/reference/platforms.md §8.1).
Error strings imitate Slack's ``errors`` / ``response_metadata.messages`` entries::

    {"ok": false, "error": "invalid_blocks",
     "errors": ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"],
     "response_metadata": {"messages": ["[ERROR] must be less than 3001 characters [...]"]}}
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "IMAGE_FILETYPES",
    "MAX_MESSAGE_BLOCKS",
    "MAX_VIEW_BLOCKS",
    "REPLAY_WINDOW",
    "ApiError",
    "FileCheck",
    "Issues",
    "check_blocks",
    "check_view",
    "parse_blocks",
    "sign",
]

JSON = dict[str, Any]
FileCheck = Callable[[Mapping[str, Any]], str | None]
"""Checks an image ``slack_file`` reference; returns an error text or None when usable."""

REPLAY_WINDOW: Final = 60 * 5
"""Slack's (and bolt's) tolerance for ``X-Slack-Request-Timestamp``: 5 minutes."""
MAX_MESSAGE_BLOCKS: Final = 50
MAX_VIEW_BLOCKS: Final = 100
IMAGE_FILETYPES: Final = frozenset({"png", "jpg", "jpeg", "gif"})

_TEXT_TYPES: Final = frozenset({"plain_text", "mrkdwn"})
_BLOCK_TYPES: Final = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
        "context_actions",
        "table",
    }
)
_SELECTS: Final = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)
_OTHER_ELEMENTS: Final = frozenset(
    {
        "button",
        "overflow",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "checkboxes",
        "radio_buttons",
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "file_input",
        "rich_text_input",
        "workflow_button",
        "image",
        "feedback_buttons",
        "icon_button",
    }
)


class ApiError(Exception):
    """A Slack Web API refusal: ``{"ok": false, "error": code, **extra}`` with ``status``."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> JSON:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class Issues:
    """Collects Slack-style validation messages (``"<text> [json-pointer:<ptr>]"``)."""

    errors: list[str] = field(default_factory=list)

    def add(self, text: str, pointer: str) -> None:
        self.errors.append(f"{text} [json-pointer:{pointer}]")

    def __bool__(self) -> bool:
        return bool(self.errors)

    def api_error(self, code: str) -> ApiError:
        messages = [f"[ERROR] {e}" for e in self.errors]
        if code == "invalid_blocks":
            return ApiError(
                code, errors=list(self.errors), response_metadata={"messages": messages}
            )
        return ApiError(code, response_metadata={"messages": messages})


# ======================================================================================
# Signing
# ======================================================================================


def sign(secret: str, timestamp: str | int, body: bytes | str) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` (Slack's request signature)."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


# ======================================================================================
# Block Kit
# ======================================================================================


def _max_len(issues: Issues, value: Any, limit: int, ptr: str) -> None:
    if isinstance(value, str) and len(value) > limit:
        issues.add(f"must be less than {limit + 1} characters", ptr)


def _text_obj(
    issues: Issues,
    obj: Any,
    ptr: str,
    *,
    limit: int,
    plain_only: bool = False,
    required: bool = True,
) -> None:
    if obj is None:
        if required:
            issues.add("missing required field", ptr)
        return
    if not isinstance(obj, Mapping):
        issues.add("must be an object", ptr)
        return
    kind = obj.get("type")
    if kind not in _TEXT_TYPES:
        issues.add("must be one of plain_text, mrkdwn", f"{ptr}/type")
    elif plain_only and kind != "plain_text":
        issues.add("must be plain_text", f"{ptr}/type")
    text = obj.get("text")
    if not isinstance(text, str):
        issues.add("missing required field: text", ptr)
    elif not text:
        issues.add("must be more than 0 characters", f"{ptr}/text")
    else:
        _max_len(issues, text, limit, f"{ptr}/text")


def _image_source(
    issues: Issues, obj: Mapping[str, Any], ptr: str, files: FileCheck | None
) -> None:
    url = obj.get("image_url")
    ref = obj.get("slack_file")
    if (url is None) == (ref is None):
        issues.add("must provide exactly one of image_url or slack_file", ptr)
        return
    if url is not None:
        if not isinstance(url, str) or not url:
            issues.add("must be a non-empty string", f"{ptr}/image_url")
        else:
            _max_len(issues, url, 3000, f"{ptr}/image_url")
        return
    if not isinstance(ref, Mapping) or ("id" in ref) == ("url" in ref):
        issues.add("must provide exactly one of id or url", f"{ptr}/slack_file")
        return
    if files is not None:
        problem = files(ref)
        if problem:
            issues.add(problem, f"{ptr}/slack_file")


def _options(issues: Issues, options: Any, ptr: str, *, max_items: int) -> None:
    if not isinstance(options, list):
        return
    if len(options) > max_items:
        issues.add(f"no more than {max_items} items allowed", ptr)
    for i, opt in enumerate(options):
        if not isinstance(opt, Mapping):
            issues.add("must be an object", f"{ptr}/{i}")
            continue
        _text_obj(issues, opt.get("text"), f"{ptr}/{i}/text", limit=75)
        _max_len(issues, opt.get("value"), 150, f"{ptr}/{i}/value")


def _element(
    issues: Issues,
    el: Any,
    ptr: str,
    files: FileCheck | None,
    action_ids: set[str] | None,
) -> None:
    if not isinstance(el, Mapping):
        issues.add("must be an object", ptr)
        return
    kind = el.get("type")
    if kind not in _SELECTS and kind not in _OTHER_ELEMENTS:
        issues.add(f"unsupported type: {kind}", f"{ptr}/type")
        return
    if kind == "image":
        if not el.get("alt_text"):
            issues.add("missing required field: alt_text", ptr)
        _max_len(issues, el.get("alt_text"), 2000, f"{ptr}/alt_text")
        _image_source(issues, el, ptr, files)
        return
    action_id = el.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or not action_id:
            issues.add("must be more than 0 characters", f"{ptr}/action_id")
        else:
            _max_len(issues, action_id, 255, f"{ptr}/action_id")
            if action_ids is not None:
                if action_id in action_ids:
                    issues.add(f"duplicate action_id: {action_id}", f"{ptr}/action_id")
                action_ids.add(action_id)
    if kind == "button":
        _text_obj(issues, el.get("text"), f"{ptr}/text", limit=75, plain_only=True)
        _max_len(issues, el.get("value"), 2000, f"{ptr}/value")
        _max_len(issues, el.get("url"), 3000, f"{ptr}/url")
        style = el.get("style")
        if style is not None and style not in ("primary", "danger"):
            issues.add("must be one of primary, danger", f"{ptr}/style")
    elif kind in _SELECTS:
        _text_obj(issues, el.get("placeholder"), f"{ptr}/placeholder", limit=150, required=False)
        _options(issues, el.get("options"), f"{ptr}/options", max_items=100)
    elif kind == "overflow":
        opts = el.get("options")
        if not isinstance(opts, list) or not 1 <= len(opts) <= 5:
            issues.add("must have between 1 and 5 options", f"{ptr}/options")
        _options(issues, opts, f"{ptr}/options", max_items=5)
    elif kind in ("checkboxes", "radio_buttons"):
        _options(issues, el.get("options"), f"{ptr}/options", max_items=10)
    elif kind == "plain_text_input":
        for key in ("max_length", "min_length"):
            value = el.get(key)
            if value is not None and (not isinstance(value, int) or not 0 <= value <= 3000):
                issues.add("must be between 0 and 3000", f"{ptr}/{key}")
        _text_obj(issues, el.get("placeholder"), f"{ptr}/placeholder", limit=150, required=False)
    elif kind == "file_input":
        max_files = el.get("max_files")
        if max_files is not None and (not isinstance(max_files, int) or not 1 <= max_files <= 10):
            issues.add("must be between 1 and 10", f"{ptr}/max_files")


def _block(
    issues: Issues,
    block: Any,
    ptr: str,
    files: FileCheck | None,
    block_ids: set[str],
) -> None:
    if not isinstance(block, Mapping):
        issues.add("must be an object", ptr)
        return
    kind = block.get("type")
    if kind not in _BLOCK_TYPES:
        issues.add(f"unsupported type: {kind}", f"{ptr}/type")
        return
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or not block_id:
            issues.add("must be more than 0 characters", f"{ptr}/block_id")
        else:
            _max_len(issues, block_id, 255, f"{ptr}/block_id")
            if block_id in block_ids:
                issues.add(f"duplicate block_id: {block_id}", f"{ptr}/block_id")
            block_ids.add(block_id)
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            issues.add("must provide either text or fields", ptr)
        if text is not None:
            _text_obj(issues, text, f"{ptr}/text", limit=3000)
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                issues.add("no more than 10 items allowed", f"{ptr}/fields")
            else:
                for i, f in enumerate(fields):
                    _text_obj(issues, f, f"{ptr}/fields/{i}", limit=2000)
        if block.get("accessory") is not None:
            _element(issues, block["accessory"], f"{ptr}/accessory", files, set())
    elif kind == "header":
        _text_obj(issues, block.get("text"), f"{ptr}/text", limit=150, plain_only=True)
    elif kind == "image":
        if not block.get("alt_text"):
            issues.add("missing required field: alt_text", ptr)
        _max_len(issues, block.get("alt_text"), 2000, f"{ptr}/alt_text")
        if block.get("title") is not None:
            _text_obj(issues, block["title"], f"{ptr}/title", limit=2000, plain_only=True)
        _image_source(issues, block, ptr, files)
    elif kind in ("actions", "context", "context_actions"):
        elements = block.get("elements")
        limit = 25 if kind == "actions" else 10
        if not isinstance(elements, list) or not elements:
            issues.add("must provide at least 1 element", f"{ptr}/elements")
            return
        if len(elements) > limit:
            issues.add(f"no more than {limit} items allowed", f"{ptr}/elements")
        action_ids: set[str] = set()
        for i, el in enumerate(elements):
            eptr = f"{ptr}/elements/{i}"
            if kind == "context" and isinstance(el, Mapping) and el.get("type") in _TEXT_TYPES:
                _text_obj(issues, el, eptr, limit=3000)
            else:
                _element(issues, el, eptr, files, action_ids)
    elif kind == "input":
        _text_obj(issues, block.get("label"), f"{ptr}/label", limit=2000, plain_only=True)
        if block.get("hint") is not None:
            _text_obj(issues, block["hint"], f"{ptr}/hint", limit=2000, plain_only=True)
        if block.get("element") is None:
            issues.add("missing required field: element", ptr)
        else:
            _element(issues, block["element"], f"{ptr}/element", files, set())
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not text:
            issues.add("must be more than 0 characters", f"{ptr}/text")
        else:
            _max_len(issues, text, 12000, f"{ptr}/text")
    elif kind == "video":
        for key in ("title", "video_url", "thumbnail_url", "alt_text"):
            if not block.get(key):
                issues.add(f"missing required field: {key}", ptr)


def parse_blocks(value: Any, pointer: str = "/blocks") -> list[Any]:
    """Accepts a list or a JSON string (form-encoded calls send blocks as JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError("invalid_blocks_format") from None
    if not isinstance(value, list):
        raise ApiError("invalid_blocks_format")
    return value


def check_blocks(
    blocks: Any,
    *,
    max_blocks: int = MAX_MESSAGE_BLOCKS,
    pointer: str = "/blocks",
    files: FileCheck | None = None,
) -> Issues:
    """Validates a block list; an empty :class:`Issues` means Slack would accept it."""
    issues = Issues()
    if not isinstance(blocks, list):
        issues.add("must be an array", pointer)
        return issues
    if len(blocks) > max_blocks:
        issues.add(f"no more than {max_blocks} items allowed", pointer)
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        _block(issues, block, f"{pointer}/{i}", files, block_ids)
    return issues


def check_view(view: Any, *, files: FileCheck | None = None) -> Issues:
    """Validates a ``views.open`` / ``views.update`` view (modal or home)."""
    issues = Issues()
    if not isinstance(view, Mapping):
        issues.add("must be an object", "/view")
        return issues
    kind = view.get("type")
    if kind not in ("modal", "home"):
        issues.add("must be one of modal, home", "/view/type")
        return issues
    if kind == "modal":
        _text_obj(issues, view.get("title"), "/view/title", limit=24, plain_only=True)
    for key in ("submit", "close"):
        if view.get(key) is not None:
            _text_obj(issues, view[key], f"/view/{key}", limit=24, plain_only=True)
    _max_len(issues, view.get("callback_id"), 255, "/view/callback_id")
    _max_len(issues, view.get("private_metadata"), 3000, "/view/private_metadata")
    _max_len(issues, view.get("external_id"), 255, "/view/external_id")
    blocks = view.get("blocks")
    if blocks is None:
        issues.add("missing required field: blocks", "/view")
        return issues
    issues.errors.extend(
        check_blocks(blocks, max_blocks=MAX_VIEW_BLOCKS, pointer="/view/blocks", files=files).errors
    )
    if (
        kind == "modal"
        and isinstance(blocks, list)
        and view.get("submit") is None
        and any(isinstance(b, Mapping) and b.get("type") == "input" for b in blocks)
    ):
        issues.add("must provide submit when the view contains input blocks", "/view/submit")
    return issues
