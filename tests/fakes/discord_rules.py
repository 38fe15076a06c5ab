"""Validation rules and error shapes of the fake Discord API (see :mod:`tests.fakes.discord`).

Everything here is pure: functions take Discord-shaped JSON and raise :class:`ApiError`
with the status, code, message and nested ``errors`` tree Discord would send.  The limits
follow platforms.md §1.2, §3.3, §3.4 and §4 and the public Discord API docs:

* application commands: names 1-32 (lowercase for CHAT_INPUT), descriptions 1-100,
  <= 25 options, <= 25 choices, required options first, unique names, 8000 chars in total;
* message bodies: content <= 2000, <= 10 embeds (6000 chars), legacy components
  (<= 5 action rows, <= 5 buttons or one select per row, custom_id 1-100, unique);
* modals: title 1-45, custom_id 1-100, 1-5 rows/labels, text inputs (label 1-45, lengths).

Error bodies look like Discord's ``50035 Invalid Form Body``::

    {"code": 50035, "message": "Invalid Form Body",
     "errors": {"0": {"name": {"_errors": [{"code": "...", "message": "..."}]}}}}

which discord.py turns into ``HTTPException.code == 50035`` (and ``CommandSyncFailure``
for ``CommandTree.sync``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "MESSAGE_FLAG_COMPONENTS_V2",
    "MESSAGE_FLAG_EPHEMERAL",
    "MESSAGE_FLAG_LOADING",
    "ApiError",
    "Issues",
    "check_message_body",
    "check_modal",
    "validate_commands",
]

JSON = dict[str, Any]

MESSAGE_FLAG_EPHEMERAL: Final = 1 << 6
MESSAGE_FLAG_LOADING: Final = 1 << 7
MESSAGE_FLAG_COMPONENTS_V2: Final = 1 << 15

_NAME_RE: Final = re.compile(r"^[-_'\w\u0900-\u097F\u0E00-\u0E7F]{1,32}$")
_SELECT_TYPES: Final = frozenset({3, 5, 6, 7, 8})
_CHOICE_OPTION_TYPES: Final = frozenset({3, 4, 10})


class ApiError(Exception):
    """A Discord-shaped error response.

    Attributes:
        status: HTTP status (400, 401, 403, 404, 413 ...).
        code: Discord JSON error code (50035, 40060, 10062, 50027, 40005 ...).
        message: Discord's ``message`` string.
        errors: Optional nested ``errors`` tree (only for 50035).
    """

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} ({code}) {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JSON:
        out: JSON = {"message": self.message, "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        return out


@dataclass
class Issues:
    """Collects ``(path, code, message)`` problems and renders Discord's ``errors`` tree."""

    items: list[tuple[tuple[str, ...], str, str]] = field(default_factory=list)

    def add(self, path: Iterable[str | int], code: str, message: str) -> None:
        self.items.append((tuple(str(p) for p in path), code, message))

    def length(self, path: Sequence[str | int], value: object, lo: int, hi: int) -> None:
        """Adds a BASE_TYPE_BAD_LENGTH issue unless ``value`` is a str of lo..hi chars."""
        if not isinstance(value, str):
            self.add(
                path,
                "BASE_TYPE_REQUIRED" if value is None else "STRING_TYPE_CONVERT",
                "This field is required" if value is None else "Could not interpret as string.",
            )
        elif not lo <= len(value) <= hi:
            self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {lo} and {hi} in length.")

    def max_items(self, path: Sequence[str | int], value: Sequence[Any], hi: int) -> None:
        if len(value) > hi:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {hi} or fewer in length.")

    def tree(self) -> JSON:
        root: JSON = {}
        for path, code, message in self.items:
            node = root
            for part in path:
                node = node.setdefault(part, {})
            node.setdefault("_errors", []).append({"code": code, "message": message})
        return root

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(400, 50035, "Invalid Form Body", self.tree())


def _as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


# --------------------------------------------------------------------------------------
# Application commands
# --------------------------------------------------------------------------------------


def _check_name(issues: Issues, path: list[str | int], name: object, *, lowercase: bool) -> None:
    issues.length([*path, "name"], name, 1, 32)
    if isinstance(name, str) and 1 <= len(name) <= 32:
        if lowercase and (not _NAME_RE.match(name) or name != name.lower()):
            issues.add(
                [*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if not lowercase and not name.strip():
            issues.add(
                [*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )


def _text_size(obj: Mapping[str, Any]) -> int:
    """Characters counted toward the 8000 limit: names, descriptions, choice names/values."""
    total = len(str(obj.get("name") or "")) + len(str(obj.get("description") or ""))
    for choice in _as_list(obj.get("choices")):
        if isinstance(choice, Mapping):
            total += len(str(choice.get("name") or "")) + len(str(choice.get("value") or ""))
    for opt in _as_list(obj.get("options")):
        if isinstance(opt, Mapping):
            total += _text_size(opt)
    return total


def _check_options(issues: Issues, path: list[str | int], options: list[Any], depth: int) -> None:
    issues.max_items([*path, "options"], options, 25)
    seen: set[str] = set()
    optional_seen = False
    kinds = {opt.get("type") for opt in options if isinstance(opt, Mapping)}
    if kinds & {1, 2} and kinds - {1, 2}:
        issues.add(
            [*path, "options"],
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-command and sub-command group option types are mutually exclusive to all other "
            "types",
        )
    for i, opt in enumerate(options):
        p: list[str | int] = [*path, "options", i]
        if not isinstance(opt, Mapping):
            issues.add(p, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        otype = opt.get("type")
        if not isinstance(otype, int) or not 1 <= otype <= 11:
            issues.add(
                [*p, "type"], "BASE_TYPE_CHOICES", f"Value must be one of {set(range(1, 12))}."
            )
            continue
        _check_name(issues, p, opt.get("name"), lowercase=True)
        issues.length([*p, "description"], opt.get("description"), 1, 100)
        name = opt.get("name")
        if isinstance(name, str):
            if name in seen:
                issues.add(
                    [*p, "name"],
                    "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            seen.add(name)
        if otype in (1, 2):
            if (otype == 2 and depth > 0) or (otype == 1 and depth > 1):
                issues.add(
                    [*p, "type"],
                    "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                    "Sub-commands cannot be nested this deep",
                )
            children = _as_list(opt.get("options"))
            if otype == 2 and any(isinstance(c, Mapping) and c.get("type") != 1 for c in children):
                issues.add(
                    [*p, "options"],
                    "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                    "Sub-command groups may only contain sub-commands",
                )
            _check_options(issues, p, children, depth + 1)
            continue
        required = bool(opt.get("required", False))
        if required and optional_seen:
            issues.add(
                p,
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        optional_seen = optional_seen or not required
        choices = _as_list(opt.get("choices"))
        if choices:
            if otype not in _CHOICE_OPTION_TYPES:
                issues.add(
                    [*p, "choices"],
                    "APPLICATION_COMMAND_OPTION_CHOICES_INVALID",
                    "Choices are only allowed for string, integer and number options",
                )
            if opt.get("autocomplete"):
                issues.add(
                    [*p, "autocomplete"],
                    "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_INVALID",
                    "Autocomplete cannot be set for options with choices",
                )
            issues.max_items([*p, "choices"], choices, 25)
            for j, choice in enumerate(choices):
                cp: list[str | int] = [*p, "choices", j]
                if not isinstance(choice, Mapping):
                    issues.add(
                        cp, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
                    )
                    continue
                issues.length([*cp, "name"], choice.get("name"), 1, 100)
                value = choice.get("value")
                if isinstance(value, str):
                    issues.length([*cp, "value"], value, 1, 100)
        for key, lo, hi in (("min_length", 0, 6000), ("max_length", 1, 6000)):
            val = opt.get(key)
            if val is not None and (not isinstance(val, int) or not lo <= val <= hi):
                issues.add(
                    [*p, key],
                    "NUMBER_TYPE_MAX" if isinstance(val, int) else "NUMBER_TYPE_COERCE",
                    f"int value should be between {lo} and {hi}.",
                )


def validate_commands(commands: object) -> list[JSON]:
    """Validates a bulk-overwrite body (list of application commands); returns the list.

    ``contexts`` is not checked: Discord ignores it for guild commands and accepts any
    valid list globally.

    Raises:
        ApiError: 400/50035 with an ``errors`` tree indexed by command position.
    """
    issues = Issues()
    if not isinstance(commands, list):
        issues.add([], "ARRAY_TYPE_CONVERT", "Could not interpret as an array.")
        issues.raise_if_any()
        return []
    counts = {1: 0, 2: 0, 3: 0, 4: 0}
    seen: set[tuple[int, str]] = set()
    for i, cmd in enumerate(commands):
        path: list[str | int] = [i]
        if not isinstance(cmd, Mapping):
            issues.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        ctype = cmd.get("type", 1)
        if ctype not in counts:
            issues.add([*path, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
            continue
        counts[ctype] += 1
        name = cmd.get("name")
        _check_name(issues, path, name, lowercase=ctype == 1)
        if isinstance(name, str):
            if (ctype, name) in seen:
                issues.add(
                    [*path, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add((ctype, name))
        if ctype == 1:
            issues.length([*path, "description"], cmd.get("description"), 1, 100)
            _check_options(issues, path, _as_list(cmd.get("options")), 0)
        else:
            if cmd.get("description"):
                issues.add(
                    [*path, "description"],
                    "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                    "Context menu commands cannot have a description",
                )
            if cmd.get("options"):
                issues.add(
                    [*path, "options"],
                    "APPLICATION_COMMAND_CONTEXT_MENU_OPTIONS",
                    "Context menu commands cannot have options",
                )
        if _text_size(cmd) > 8000:
            issues.add(path, "APPLICATION_COMMAND_TOO_LARGE", "Command exceeds maximum size (8000)")
    for ctype, cap in ((1, 100), (2, 15), (3, 15)):
        if counts[ctype] > cap:
            issues.add(
                [],
                "APPLICATION_COMMANDS_TOO_MANY",
                f"Maximum number of application commands of type {ctype} reached ({cap})",
            )
    issues.raise_if_any()
    return [dict(c) for c in commands]


# --------------------------------------------------------------------------------------
# Messages and components
# --------------------------------------------------------------------------------------


def _check_button(issues: Issues, path: list[str | int], comp: Mapping[str, Any]) -> None:
    style = comp.get("style")
    if style not in (1, 2, 3, 4, 5, 6):
        issues.add(
            [*path, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}."
        )
        return
    label = comp.get("label")
    if label is not None:
        issues.length([*path, "label"], label, 0, 80)
    if style == 5:
        if not comp.get("url"):
            issues.add([*path, "url"], "BUTTON_COMPONENT_URL_REQUIRED", "A url is required")
        if comp.get("custom_id") is not None:
            issues.add(
                [*path, "custom_id"],
                "BUTTON_COMPONENT_CUSTOM_ID_INVALID",
                "A custom id cannot be set for link buttons",
            )
    elif style == 6:
        if not comp.get("sku_id"):
            issues.add([*path, "sku_id"], "BASE_TYPE_REQUIRED", "This field is required")
    else:
        issues.length([*path, "custom_id"], comp.get("custom_id"), 1, 100)
    if style != 6 and label is None and comp.get("emoji") is None:
        issues.add(path, "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED", "A label or emoji is required")


def _check_select(issues: Issues, path: list[str | int], comp: Mapping[str, Any]) -> None:
    issues.length([*path, "custom_id"], comp.get("custom_id"), 1, 100)
    if comp.get("placeholder") is not None:
        issues.length([*path, "placeholder"], comp.get("placeholder"), 0, 150)
    for key, lo, hi in (("min_values", 0, 25), ("max_values", 1, 25)):
        val = comp.get(key)
        if val is not None and (not isinstance(val, int) or not lo <= val <= hi):
            issues.add(
                [*path, key], "NUMBER_TYPE_MAX", f"int value should be between {lo} and {hi}."
            )
    if comp.get("type") == 3:
        options = _as_list(comp.get("options"))
        if not 1 <= len(options) <= 25:
            issues.add(
                [*path, "options"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 25 in length."
            )
        for j, opt in enumerate(options):
            if isinstance(opt, Mapping):
                issues.length([*path, "options", j, "label"], opt.get("label"), 1, 100)
                issues.length([*path, "options", j, "value"], opt.get("value"), 1, 100)


def _walk_custom_ids(components: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    for comp in components:
        if not isinstance(comp, Mapping):
            continue
        if "custom_id" in comp:
            yield str(comp.get("custom_id")), comp
        for key in ("components",):
            yield from _walk_custom_ids(_as_list(comp.get(key)))
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, Mapping):
                yield from _walk_custom_ids([child])


def _count_components(components: Iterable[Any]) -> int:
    total = 0
    for comp in components:
        if isinstance(comp, Mapping):
            total += 1 + _count_components(_as_list(comp.get("components")))
            for key in ("accessory", "component"):
                child = comp.get(key)
                if isinstance(child, Mapping):
                    total += _count_components([child])
    return total


def _check_message_components(issues: Issues, components: list[Any], flags: int) -> None:
    if flags & MESSAGE_FLAG_COMPONENTS_V2:
        if _count_components(components) > 40:
            issues.add(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in total.")
    else:
        issues.max_items(["components"], components, 5)
        for i, row in enumerate(components):
            path: list[str | int] = ["components", i]
            if not isinstance(row, Mapping) or row.get("type") != 1:
                issues.add(
                    [*path, "type"],
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
                continue
            children = _as_list(row.get("components"))
            if not children:
                issues.add(
                    [*path, "components"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            issues.max_items([*path, "components"], children, 5)
            types = [c.get("type") for c in children if isinstance(c, Mapping)]
            if any(t in _SELECT_TYPES for t in types) and len(children) > 1:
                issues.add(
                    [*path, "components"],
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            for j, comp in enumerate(children):
                cpath: list[str | int] = [*path, "components", j]
                if not isinstance(comp, Mapping):
                    continue
                ctype = comp.get("type")
                if ctype == 2:
                    _check_button(issues, cpath, comp)
                elif ctype in _SELECT_TYPES:
                    _check_select(issues, cpath, comp)
                else:
                    issues.add(
                        [*cpath, "type"],
                        "UNION_TYPE_CHOICES",
                        'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
                    )
    seen: set[str] = set()
    for custom_id, _ in _walk_custom_ids(components):
        if len(custom_id) > 100:
            issues.add(
                ["components"],
                "BASE_TYPE_BAD_LENGTH",
                "custom_id must be between 1 and 100 in length.",
            )
        if custom_id in seen:
            issues.add(
                ["components"],
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.add(custom_id)


def _embed_size(embed: Mapping[str, Any]) -> int:
    total = len(str(embed.get("title") or "")) + len(str(embed.get("description") or ""))
    for key in ("footer", "author"):
        sub = embed.get(key)
        if isinstance(sub, Mapping):
            total += len(str(sub.get("text") or sub.get("name") or ""))
    for f in _as_list(embed.get("fields")):
        if isinstance(f, Mapping):
            total += len(str(f.get("name") or "")) + len(str(f.get("value") or ""))
    return total


def _check_embeds(issues: Issues, embeds: list[Any]) -> None:
    issues.max_items(["embeds"], embeds, 10)
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, Mapping):
            continue
        p: list[str | int] = ["embeds", i]
        for key, hi in (("title", 256), ("description", 4096)):
            if embed.get(key) is not None:
                issues.length([*p, key], embed.get(key), 0, hi)
        fields = _as_list(embed.get("fields"))
        issues.max_items([*p, "fields"], fields, 25)
        total += _embed_size(embed)
    if total > 6000:
        issues.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def check_message_body(body: Mapping[str, Any], *, creating: bool, has_files: bool) -> None:
    """Validates a create/edit message body (channel message, webhook or callback data).

    Raises:
        ApiError: 400/50035 for field problems, 400/50006 for an empty new message.
    """
    issues = Issues()
    content = body.get("content")
    if content is not None:
        if not isinstance(content, str):
            issues.add(["content"], "STRING_TYPE_CONVERT", "Could not interpret as string.")
        elif len(content) > 2000:
            issues.add(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    flags = body.get("flags") or 0
    flags = flags if isinstance(flags, int) else 0
    embeds = _as_list(body.get("embeds"))
    _check_embeds(issues, embeds)
    components = _as_list(body.get("components"))
    _check_message_components(issues, components, flags)
    if flags & MESSAGE_FLAG_COMPONENTS_V2 and (content or embeds):
        issues.add(
            ["content"],
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used when using the IS_COMPONENTS_V2 flag",
        )
    issues.raise_if_any()
    if creating and not (
        content
        or embeds
        or components
        or has_files
        or body.get("sticker_ids")
        or body.get("poll")
        or body.get("attachments")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")


# --------------------------------------------------------------------------------------
# Modals
# --------------------------------------------------------------------------------------


def _check_text_input(
    issues: Issues, path: list[str | int], comp: Mapping[str, Any], *, label_required: bool
) -> None:
    issues.length([*path, "custom_id"], comp.get("custom_id"), 1, 100)
    if comp.get("style") not in (1, 2):
        issues.add([*path, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2}.")
    if label_required or comp.get("label") is not None:
        issues.length([*path, "label"], comp.get("label"), 1, 45)
    for key, lo, hi in (("min_length", 0, 4000), ("max_length", 1, 4000)):
        val = comp.get(key)
        if val is not None and (not isinstance(val, int) or not lo <= val <= hi):
            issues.add(
                [*path, key], "NUMBER_TYPE_MAX", f"int value should be between {lo} and {hi}."
            )
    if comp.get("value") is not None:
        issues.length([*path, "value"], comp.get("value"), 0, 4000)
    if comp.get("placeholder") is not None:
        issues.length([*path, "placeholder"], comp.get("placeholder"), 0, 100)


def check_modal(data: object) -> None:
    """Validates the ``data`` of a type-9 (MODAL) interaction callback.

    Raises:
        ApiError: 400/50035 with errors under ``data``.
    """
    issues = Issues()
    if not isinstance(data, Mapping):
        issues.add(["data"], "BASE_TYPE_REQUIRED", "This field is required")
        issues.raise_if_any()
        return
    issues.length(["data", "title"], data.get("title"), 1, 45)
    issues.length(["data", "custom_id"], data.get("custom_id"), 1, 100)
    rows = _as_list(data.get("components"))
    if not 1 <= len(rows) <= 5:
        issues.add(
            ["data", "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
        )
    for i, row in enumerate(rows):
        path: list[str | int] = ["data", "components", i]
        if not isinstance(row, Mapping):
            continue
        rtype = row.get("type")
        if rtype == 1:
            children = _as_list(row.get("components"))
            if (
                len(children) != 1
                or not isinstance(children[0], Mapping)
                or children[0].get("type") != 4
            ):
                issues.add(
                    [*path, "components"],
                    "MODAL_ACTION_ROW_INVALID",
                    "An action row in a modal must contain exactly one text input",
                )
            else:
                _check_text_input(
                    issues, [*path, "components", 0], children[0], label_required=True
                )
        elif rtype == 18:
            issues.length([*path, "label"], row.get("label"), 1, 45)
            if row.get("description") is not None:
                issues.length([*path, "description"], row.get("description"), 0, 100)
            child = row.get("component")
            if not isinstance(child, Mapping):
                issues.add([*path, "component"], "BASE_TYPE_REQUIRED", "This field is required")
            elif child.get("type") == 4:
                if child.get("label") is not None:
                    issues.add(
                        [*path, "component", "label"],
                        "TEXT_INPUT_LABEL_IN_LABEL",
                        "A text input inside a label cannot have its own label",
                    )
                _check_text_input(issues, [*path, "component"], child, label_required=False)
            elif child.get("type") in (*_SELECT_TYPES, 19):
                issues.length([*path, "component", "custom_id"], child.get("custom_id"), 1, 100)
            else:
                issues.add(
                    [*path, "component", "type"],
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (3, 4, 5, 6, 7, 8, 19).',
                )
        elif rtype != 10:
            issues.add(
                [*path, "type"],
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1, 10, 18).',
            )
    issues.raise_if_any()
