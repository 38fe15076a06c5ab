"""Property-based fuzzing of the adapters' translate layers (hypothesis).

Three properties, each driving the same pure functions the platform flows call, with
generated *shapes* (flag-shaped tokens, the real option names, custom-id templates, nested
component trees, JSON documents) filled with junk values:

1. Slack ``/imagine`` text -> ``imagine_fields`` -> ``prevalidate`` (pydantic + catalog).
2. Discord slash-command options, mention text, button/modal custom ids, modal components,
   attachments, aspect-ratio autocomplete and reply handles.
3. Slack button and modal payloads, thread-parent blocks and reply handles; the playground's
   imagine form and its JSON action body.

The property everywhere: no unhandled exception. Input that cannot become a request is
refused with a typed user error (:class:`bot.errors.UserInputError`, a non-empty message
without a traceback, which :func:`bot.messages.render_error` can word); ``parse_*`` return
None for junk; ``decode_handle`` raises ValueError (its documented contract).

Concrete inputs the fuzzers found are kept as plain regression tests at the end.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.fakes.discord  # noqa: F401  (imports discord.py without the audioop warning)
from adapters.discord import translate as discord_tr
from adapters.discord.views import INSTRUCTION_FIELD, PROMPT_FIELD
from adapters.slack import translate as slack_tr
from adapters.web import translate as web_tr
from adapters.web.api import _act_body
from bot.catalog import RATIOS_COMMON, RATIOS_EXTREME, ResolvedSize, default_catalog, validate
from bot.errors import BananabotError, InvalidRequest, UserInputError
from bot.messages import render_error
from bot.models import ImageRequest, JobAction, parse_request
from bot.policy import TOLERANCE_ORDER

CATALOG = default_catalog()

FUZZ = settings(
    max_examples=10_000,
    derandomize=True,
    deadline=None,
    database=None,
    # A timing check: on a busy CI machine it would fail runs that are otherwise identical.
    suppress_health_check=[HealthCheck.too_slow],
)

T = TypeVar("T")

# --- strategy helpers ------------------------------------------------------------------------

# Any Unicode scalar value except surrogates: letters, digits of every script, marks,
# control characters (NUL, ESC, DEL, C1), format characters (ZWJ, RTL marks), all spaces.
chars = st.characters(exclude_categories=("Cs",))
text = st.text(chars, max_size=24)
controls = st.text(
    st.sampled_from(["\x00", "\x1b", "\x7f", "\x85", "\u200b", "\u202e", "\ufeff", "\r", "\x0b"]),
    min_size=1,
    max_size=4,
)
non_ascii_digits = st.text(st.sampled_from("٠١٢٣٤٥٦٧٨٩۰۱۲۳४५६௭๑１２３"), min_size=1, max_size=4)


def huge(min_size: int = 1_000, max_size: int = 50_000) -> st.SearchStrategy[str]:
    """Long text (up to 50k characters) built by repetition: cheap to generate and shrink."""
    return st.builds(
        lambda unit, size: (unit * (size // len(unit) + 1))[:size],
        st.text(chars, min_size=1, max_size=6),
        st.integers(min_size, max_size),
    )


scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
_containers = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(text, scalars, max_size=3)
)
json_values: st.SearchStrategy[Any] = st.one_of(
    _containers, st.lists(_containers, max_size=3), st.dictionaries(text, _containers, max_size=3)
)
"""JSON-like values up to two levels deep (Python's json also writes NaN and Infinity);
flatter and much cheaper to draw than ``st.recursive``."""


def shaped(valid: st.SearchStrategy[T]) -> st.SearchStrategy[Any]:
    """Mostly valid-looking values, else junk of any type, huge text or numbers, control
    characters."""
    return st.one_of(
        valid, valid, json_values, huge(), controls, non_ascii_digits, st.builds(lambda: 10**5000)
    )


def json_text(value: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """``value`` written as JSON, or mangled JSON text."""
    return st.one_of(
        value.map(json.dumps),
        st.builds(lambda v, cut: json.dumps(v)[:cut], value, st.integers(0, 40)),
        text,
    )


def case(kind: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """One kind of payload, tagged with its name (each example fuzzes one entry point)."""
    return st.tuples(st.just(kind), values)


def join(parts: list[tuple[str, str]]) -> str:
    return "".join(piece + sep for piece, sep in parts)


ratios = st.sampled_from([*RATIOS_COMMON, *RATIOS_EXTREME, "5:7", "0:0", "16:09", " 16:9 ", ""])
tiers = st.sampled_from(["0.5K", "1K", "2K", "4K", ".5k", "0.5k", "1k", "8K", "512", ""])
models = st.sampled_from(["nano-banana-pro", "nano-banana-2", "pro", "nb2", "nbp", "2", "dalle"])
safeties = st.sampled_from([*TOLERANCE_ORDER, "LOW", "max", ""])
prompts = st.one_of(
    st.sampled_from(["a cat", "a lighthouse at dusk", "ab", "   ", "", "<@123> a fox"]), text
)
job_ids = st.one_of(
    st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=41), text
)
indexes = st.one_of(st.integers(0, 120).map(str), non_ascii_digits, text)


def assert_user_error(exc: BaseException) -> None:
    """A refusal as people see it: a typed user error with words, never a traceback."""
    assert isinstance(exc, UserInputError), f"untyped refusal: {exc!r}"
    assert isinstance(exc.message, str) and exc.message.strip(), f"empty message: {exc!r}"
    assert "Traceback (most recent call last)" not in exc.message
    words = render_error(exc)
    assert words.strip() and "Traceback (most recent call last)" not in words


def refused_or(build: Callable[[], T]) -> T | None:
    """``build()``, or None when it refused with a typed user error (checked)."""
    try:
        return build()
    except BananabotError as exc:
        assert_user_error(exc)
        return None


def check_accepted(request: ImageRequest) -> None:
    spec = CATALOG.model(request.model)
    assert spec.prompt_min <= len(request.prompt.strip()) <= spec.prompt_max
    assert 1 <= request.number_results <= spec.results_max
    assert request.seed is None or 0 <= request.seed <= spec.seed_max


# --- 1. Slack /imagine text ------------------------------------------------------------------

_good_values: Mapping[str, tuple[str, ...]] = {
    "model": ("pro", "nb2", "Nano-Banana-Pro", "2", "nbp"),
    "aspect_ratio": (*RATIOS_COMMON, *RATIOS_EXTREME),
    "resolution": ("0.5K", ".5k", "1k", "2K", "4K"),
    "seed": ("0", "42", "9223372036854775807"),
    "number_results": ("1", "2", "4", "20"),
    "safety_tolerance": (*TOLERANCE_ORDER, "LOW"),
}
good_flags = st.sampled_from(
    [
        f"{dash}{name}{sep}{value}"
        for name, field in slack_tr.FLAGS.items()
        for value in _good_values[field]
        for dash, sep in (("--", " "), ("—", " "), ("--", "="), ("–", "  "))
    ]
)
"""Flags /imagine accepts, with allowed values (so requests with several flags get built)."""
flag_names = st.one_of(
    st.sampled_from([*slack_tr.FLAGS, "AR", "Model", "N", "style", "q", "n-", "seed_"]),
    st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=8),
)
flag_values = st.one_of(
    ratios,
    tiers,
    models,
    safeties,
    st.sampled_from(
        [
            *("0", "4", "20", "21", "007", "-1", "1.5", "1e3", "9223372036854775807"),
            *("9223372036854775808", "99999999999999999999", '"16:9"', "“pro”", "'", '"'),
            *("--n", "—"),
        ]
    ),
    st.integers().map(str),
    non_ascii_digits,
    text,
    huge(),
)
_dashes = ("--", "—", "–", "-", "---", "— ")
_separators = (" ", "=", "\t", "  ", "", "\n", " \t", "\u3000")
flag_tokens = st.builds(
    lambda around, name, value: f"{around[0]}{name}{around[1]}{value}",
    st.sampled_from([(dash, sep) for dash in _dashes for sep in _separators]),
    flag_names,
    flag_values,
)
"""``--name value`` and its variants: smart dashes, ``=``, odd spacing, no value at all."""
slack_texts = st.lists(
    st.tuples(
        st.one_of(good_flags, good_flags, flag_tokens, prompts, prompts, text, controls, huge()),
        st.sampled_from([" ", " ", "  ", "\t", "\n", "", "\x00", "\u3000", "\xa0"]),
    ),
    max_size=7,
).map(join)


def slack_imagine(
    text: str, mention: str | None, pending: int
) -> tuple[ImageRequest, ResolvedSize]:
    """What ``/imagine`` (and a mention, with references not downloaded yet) does with text."""
    if mention is not None:  # Flows.mention
        text = slack_tr.strip_mention(f"<@{mention}> {text}", mention)
    fields = slack_tr.imagine_fields(text)
    return slack_tr.prevalidate(CATALOG, fields, pending_references=pending)


@FUZZ
@given(
    text=slack_texts,
    mention=st.one_of(st.sampled_from([None, None, "U0BANANA"]), text),
    pending=st.integers(0, 20),
)
def test_slack_imagine_text_becomes_a_request_or_a_user_error(
    text: str, mention: str | None, pending: int
) -> None:
    outcome = refused_or(lambda: slack_imagine(text, mention, pending))
    if outcome is None:
        return
    request, size = outcome
    check_accepted(request)
    assert len(request.references) == pending
    assert slack_tr._FLAG_RE.search(request.prompt) is None, "a flag was left in the prompt"
    assert CATALOG.estimate_micros(request, size) > 0


# --- 2. Discord ------------------------------------------------------------------------------

discord_options = st.fixed_dictionaries(
    {"prompt": shaped(prompts)},
    optional={
        "model": shaped(st.sampled_from(list(CATALOG.names))),
        "aspect_ratio": shaped(ratios),
        "resolution": shaped(tiers),
        "seed": shaped(st.integers(-5, 2**64)),
        "count": shaped(st.integers(-2, 30)),
        "safety": shaped(safeties),
    },
)
"""The ``/imagine`` callback's keyword options (``ref1..4`` are attachments, fuzzed apart)."""

button_ids = st.one_of(
    st.builds(
        lambda action, job, index: f"bb:{action}:{job}:{index}",
        st.sampled_from(["vary", "upscale", "edit", "editmodal", "imagine", "VARY", ""]),
        job_ids,
        indexes,
    ),
    st.builds(lambda message: f"bb:imaginemodal:{message}", st.one_of(indexes, text)),
    text,
)
component_leaf = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from([1, 4, 18]), scalars),
        "custom_id": st.one_of(st.sampled_from([PROMPT_FIELD, INSTRUCTION_FIELD]), scalars),
        "value": shaped(prompts),
    },
)
components = st.lists(
    st.recursive(
        st.one_of(component_leaf, scalars),
        lambda inner: st.one_of(
            st.fixed_dictionaries({"type": st.just(1), "components": st.lists(inner, max_size=3)}),
            st.fixed_dictionaries({"type": st.just(18), "component": inner}),
            st.fixed_dictionaries({"components": json_values, "component": scalars}),
        ),
        max_leaves=5,
    ),
    max_size=4,
)
handle_keys = {key: scalars for key in ("a", "t", "i", "c", "u", "g", "m", "o", "l")}
discord_handles = st.one_of(
    json_text(st.fixed_dictionaries({}, optional=handle_keys)),
    json_text(
        st.fixed_dictionaries(
            {"a": st.integers(), "i": st.floats(), "c": st.integers(), "u": st.integers()},
            optional={"t": text, "g": scalars, "l": scalars, "x": scalars},
        )
    ),
    json_text(json_values),
)
mention_texts = st.lists(
    st.tuples(
        st.one_of(
            st.builds(
                lambda bang, digits: f"<@{bang}{digits}>",
                st.sampled_from(["", "!"]),
                st.one_of(
                    st.just("42"),
                    st.integers(0, 2**64).map(str),
                    non_ascii_digits,
                    st.integers(1, 6000).map(lambda n: "9" * n),
                ),
            ),
            prompts,
            huge(),
        ),
        st.sampled_from([" ", "", "\n"]),
    ),
    max_size=6,
).map(join)


def discord_imagine(options: Mapping[str, Any]) -> ImageRequest:
    """The ``/imagine`` callback's ``imagine_fields`` + ``Flows._checked`` (no references)."""
    fields = discord_tr.imagine_fields(**options)
    return discord_tr.prevalidate(CATALOG, fields, [])


def discord_modal(values: Mapping[str, str], sizes: list[tuple[int, int]]) -> ImageRequest:
    """``Flows.on_modal`` for "Imagine from this": the modal's prompt with the kept images."""
    fields = discord_tr.imagine_fields(prompt=values.get(PROMPT_FIELD, ""))
    return discord_tr.prevalidate(CATALOG, fields, sizes)


def discord_mention(content: str, bot_id: int) -> ImageRequest | None:
    """``Flows.on_mention``: only an explicit mention starts a job; the rest is the prompt."""
    if not discord_tr.mentions(content, bot_id):
        return None
    fields = discord_tr.imagine_fields(prompt=discord_tr.strip_mentions(content, bot_id))
    return discord_tr.prevalidate(CATALOG, fields, [])


def check_discord_options(options: Mapping[str, Any]) -> None:
    request = refused_or(lambda: discord_imagine(options))
    if request is not None:
        check_accepted(request)


def check_discord_custom_id(custom_id: str) -> None:
    button = discord_tr.parse_button_id(custom_id)
    if button is not None:
        assert button.action in discord_tr.ACTION_LABELS and 0 <= button.index <= 99
        assert discord_tr._BUTTON_RE.fullmatch(custom_id)
    modal = discord_tr.parse_modal_id(custom_id)
    assert modal is None or isinstance(modal, discord_tr.EditModalRef | discord_tr.ImagineModalRef)


def check_discord_modal(submit: tuple[list[Any], list[tuple[int, int]]]) -> None:
    tree, sizes = submit
    values = discord_tr.modal_values(tree)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    request = refused_or(lambda: discord_modal(values, sizes))
    if request is not None:
        check_accepted(request)
        assert len(request.references) == len(sizes)


def check_discord_mention(content: str) -> None:
    request = refused_or(lambda: discord_mention(content, 42))
    if request is not None:
        check_accepted(request)


def check_discord_attachment(attachment: tuple[str, str | None, int]) -> None:
    filename, content_type, size = attachment
    refused_or(lambda: discord_tr.check_attachment(filename, content_type, size, 0))


def check_discord_autocomplete(namespace: tuple[Any, Any, str]) -> None:
    model, resolution, current = namespace
    found = discord_tr.ratio_choices(CATALOG, model, resolution, current)
    assert len(found) <= 25 and all(isinstance(r, str) for r in found)


def check_discord_handle(handle: str) -> None:
    try:
        decoded = discord_tr.decode_handle(handle)
    except ValueError:
        return
    assert discord_tr.encode_handle(decoded)


DISCORD_CHECKS: Mapping[str, Callable[[Any], None]] = {
    "options": check_discord_options,
    "custom_id": check_discord_custom_id,
    "modal": check_discord_modal,
    "mention": check_discord_mention,
    "attachment": check_discord_attachment,
    "autocomplete": check_discord_autocomplete,
    "handle": check_discord_handle,
}
discord_payloads = st.one_of(
    case("options", discord_options),
    case("options", discord_options),
    case("custom_id", button_ids),
    case(
        "modal",
        st.tuples(
            components,
            st.lists(st.tuples(st.integers(0, 9000), st.integers(0, 9000)), max_size=16),
        ),
    ),
    case("mention", mention_texts),
    case(
        "attachment",
        st.tuples(
            st.one_of(st.sampled_from(["cat.png", "a.JPEG", "x.gif.exe", ""]), text),
            st.one_of(st.none(), st.sampled_from(["image/png; charset=x", "IMAGE/WEBP", ""]), text),
            st.integers(-1, 2**40),
        ),
    ),
    case("autocomplete", st.tuples(scalars, scalars, st.one_of(ratios, text))),
    case("handle", discord_handles),
)


@FUZZ
@given(payload=discord_payloads)
def test_discord_payloads_become_requests_or_user_errors(payload: tuple[str, Any]) -> None:
    kind, value = payload
    DISCORD_CHECKS[kind](value)


# --- 3. Slack payloads and the playground ----------------------------------------------------


def _str(value: object) -> str:
    """What the Slack app does with a payload field (``adapters.slack.app._str``)."""
    return value if isinstance(value, str) else ""


action_values = st.one_of(st.builds(lambda job, index: f"{job}:{index}", job_ids, indexes), scalars)
actions = st.fixed_dictionaries(
    {},
    optional={
        "action_id": st.one_of(
            st.sampled_from([*slack_tr.ACTION_IDS.values(), "bb_other", ""]), scalars
        ),
        "value": action_values,
        "type": st.one_of(st.just("button"), scalars),
    },
)
blocks = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.one_of(st.just("actions"), scalars)},
            optional={
                "elements": st.one_of(st.lists(st.one_of(actions, scalars), max_size=4), scalars)
            },
        ),
        json_values,
    ),
    max_size=5,
)
metadata = st.one_of(
    st.builds(
        lambda job, index, channel, thread: f"{job}:{index}:{channel}:{thread}",
        job_ids,
        indexes,
        st.one_of(st.sampled_from(["C0123ABC", "D1", ""]), text),
        st.one_of(st.sampled_from(["", "1712345678.000100", "1.1"]), text),
    ),
    text,
)
slack_handles = st.one_of(
    json_text(
        st.fixed_dictionaries(
            {}, optional={key: scalars for key in ("c", "u", "t", "s", "r", "ra", "x")}
        )
    ),
    json_text(
        st.fixed_dictionaries(
            {"c": text, "u": text}, optional={"t": scalars, "ra": scalars, "r": scalars}
        )
    ),
    json_text(json_values),
)
form_values = st.one_of(
    prompts,
    ratios,
    tiers,
    models,
    safeties,
    st.integers().map(str),
    json_text(json_values),
    controls,
    huge(),
)
"""Form fields are text on the wire (multipart): JSON values arrive as their JSON text."""
forms = st.one_of(
    st.fixed_dictionaries(
        {"prompt": st.one_of(prompts, prompts, huge(), controls, json_text(json_values))},
        optional={name: form_values for name in web_tr.FORM_FIELDS if name != "prompt"},
    ),
    st.dictionaries(
        st.one_of(st.sampled_from([*web_tr.FORM_FIELDS, "width", "references"]), text),
        form_values,
        max_size=6,
    ),
)
act_bodies = st.one_of(
    json_text(st.fixed_dictionaries({}, optional={"request_id": scalars, "instruction": scalars})),
    json_text(json_values),
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
)


class _Body:
    """Enough of ``aiohttp.web.Request`` for ``_act_body``: ``read()`` never waits."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    async def read(self) -> bytes:
        return self._raw


def act_body(raw: str) -> object:
    """The playground's JSON action body, parsed by the handler's own helper (no loop needed:
    nothing in it waits)."""
    coroutine = _act_body(_Body(raw.encode("utf-8")))  # type: ignore[arg-type]
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    finally:
        coroutine.close()
    raise AssertionError("_act_body waited")


def web_imagine(form: Mapping[str, str]) -> ImageRequest:
    """``POST /api/imagine``'s field checks, then the catalog check ``submit`` starts with."""
    fields = dict(form)
    fields.pop("request_id", None)
    request = parse_request(web_tr.request_fields(fields, ()))
    validate(CATALOG, request)
    return request


def check_slack_action(action: Mapping[str, Any]) -> None:
    """``SlackApp.on_button`` / ``on_edit``: the clicked action of a block_actions payload."""
    ref = slack_tr.parse_action(_str(action.get("action_id")), _str(action.get("value")))
    if ref is not None:
        assert ref.action in slack_tr.ACTION_IDS and 0 <= ref.index <= 99
        assert slack_tr.action_value(ref.job_id, ref.index)


def check_slack_parent(parent: list[Any]) -> None:
    """``Flows.mention``: the blocks of a thread's parent message."""
    found = slack_tr.result_ref(parent)
    assert found is None or isinstance(found, slack_tr.ActionRef)


def check_slack_metadata(meta: str) -> None:
    """``SlackApp.on_edit_submit``: the Edit modal's ``private_metadata``."""
    edit = slack_tr.parse_edit_metadata(meta)
    if edit is not None:
        assert slack_tr.parse_edit_metadata(slack_tr.edit_metadata(edit)) == edit


def check_slack_handle(handle: str) -> None:
    try:
        decoded = slack_tr.decode_handle(handle)
    except ValueError:
        return
    assert slack_tr.encode_handle(decoded)


def check_web_form(form: Mapping[str, str]) -> None:
    try:
        request = web_imagine(form)
    except BananabotError as exc:
        assert_user_error(exc)
        view = web_tr.error_view(exc)
        assert web_tr.error_status(exc) in (400, 402, 404)
        assert view.error.message and view.error.code == exc.code
    else:
        check_accepted(request)


def check_web_act_body(body: str) -> None:
    refused_or(lambda: act_body(body))


SLACK_WEB_CHECKS: Mapping[str, Callable[[Any], None]] = {
    "action": check_slack_action,
    "parent": check_slack_parent,
    "metadata": check_slack_metadata,
    "handle": check_slack_handle,
    "form": check_web_form,
    "act_body": check_web_act_body,
}
slack_web_payloads = st.one_of(
    case("action", actions),
    case("parent", blocks),
    case("metadata", metadata),
    case("handle", slack_handles),
    case("form", forms),
    case("form", forms),
    case("act_body", act_bodies),
)


@FUZZ
@given(payload=slack_web_payloads)
def test_slack_payloads_and_playground_input_are_parsed_or_refused(
    payload: tuple[str, Any],
) -> None:
    kind, value = payload
    SLACK_WEB_CHECKS[kind](value)


# --- regressions found by the properties above -----------------------------------------------


def test_a_block_whose_elements_are_not_a_list_is_skipped() -> None:
    # A thread parent's blocks come from Slack as JSON; ``elements`` that is a number or a
    # boolean made result_ref raise TypeError ("'int' object is not iterable").
    ref = slack_tr.result_ref(
        [
            {"type": "actions", "elements": 0.5},
            {"type": "actions", "elements": True},
            {"type": "actions", "elements": [{"action_id": "bb_vary", "value": "job1:0"}]},
        ]
    )
    assert ref == slack_tr.ActionRef(JobAction.VARY, "job1", 0)


@pytest.mark.parametrize("value", [5, 1.5, ["16:9"], {"w": 16}, True])
def test_a_non_text_aspect_ratio_option_is_a_user_error(value: object) -> None:
    # imagine_fields called .strip() on whatever the option held: AttributeError.
    with pytest.raises(UserInputError) as info:
        discord_imagine({"prompt": "a cat", "aspect_ratio": value})
    assert_user_error(info.value)
    assert getattr(info.value, "field", None) == "aspect_ratio"


def test_a_mention_of_thousands_of_digits_is_not_a_mention() -> None:
    # ``<@9999…>`` with more than 4300 digits made int() raise ValueError (Python's limit on
    # integer string conversion); snowflakes have at most 20 digits.
    content = f"<@{'9' * 5000}> a cat <@42>"
    assert discord_tr.mentions(content, 42)
    assert discord_tr.strip_mentions(content, 42) == f"<@{'9' * 5000}> a cat"
    assert not discord_tr.mentions(f"<@{'4' * 5000}>", 42)


def test_a_deeply_nested_action_body_is_a_user_error() -> None:
    """``[`` x 100,000 fits the playground's 1 MiB limit; ``json.loads`` raised
    RecursionError on it (a 500); pydantic's parser refuses it as invalid JSON."""
    with pytest.raises(InvalidRequest) as refused:
        act_body("[" * 100_000)
    assert refused.value.field == "request"
