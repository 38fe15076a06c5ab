"""Safety policy clamping and the money helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.budgets import Period, period_bounds
from bot.errors import InvalidRequest
from bot.models import ImageRequest, parse_request
from bot.money import format_usd, parse_usd, usd_to_micros
from bot.policy import TOLERANCE_SCALE, ChannelPolicy, apply_policy, combine


def req(**fields: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse", **fields})


def test_a_request_above_the_policy_is_clamped_and_the_person_told() -> None:
    decision = apply_policy(req(safety_tolerance="off"), ChannelPolicy(max_tolerance="medium"))
    assert decision.request.safety_tolerance == "medium"
    assert decision.notices and "'off'" in decision.notices[0]


def test_a_request_within_the_policy_is_untouched() -> None:
    request = req(safety_tolerance="low")
    decision = apply_policy(request, ChannelPolicy(max_tolerance="medium"))
    assert decision.request is request and decision.notices == ()


def test_an_unset_tolerance_cannot_fall_back_to_a_more_permissive_provider_default() -> None:
    decision = apply_policy(req(), ChannelPolicy(max_tolerance="high"))
    assert decision.request.safety_tolerance == "high"
    assert decision.notices == ()


def test_an_unset_tolerance_stays_unset_when_the_default_is_allowed() -> None:
    decision = apply_policy(req(), ChannelPolicy(max_tolerance="none"))
    assert decision.request.safety_tolerance is None


def test_forced_content_check() -> None:
    decision = apply_policy(req(), ChannelPolicy(max_tolerance="off", force_check_content=True))
    assert decision.request.check_content is True


def test_a_channel_can_tighten_but_not_loosen_its_workspace() -> None:
    workspace = ChannelPolicy(max_tolerance="high")
    assert combine(workspace, ChannelPolicy(max_tolerance="low")).max_tolerance == "low"
    assert combine(workspace, ChannelPolicy(max_tolerance="off")).max_tolerance == "high"
    assert combine(workspace, ChannelPolicy(force_check_content=True)).force_check_content


def test_the_mapping_table_is_monotonic_on_every_scale() -> None:
    runflow = [int(m.runflow) for m in TOLERANCE_SCALE.values()]
    assert runflow == sorted(runflow) and all(1 <= v <= 6 for v in runflow)
    assert [m.runware for m in TOLERANCE_SCALE.values()] == list(TOLERANCE_SCALE)


@pytest.mark.parametrize(
    ("value", "micros"),
    [(0.138, 138_000), (0.1424, 142_400), (0.06979, 69_790), ("5", 5_000_000), (0.0000005, 1)],
)
def test_dollars_convert_to_whole_micro_dollars(value: float | str, micros: int) -> None:
    assert usd_to_micros(value) == micros


def test_parse_and_format_usd() -> None:
    assert parse_usd("$2.50") == 2_500_000
    assert format_usd(5_000_000) == "$5.00"
    assert format_usd(68_950) == "$0.06895"
    assert format_usd(138_000) == "$0.1380"
    with pytest.raises(ValueError):
        parse_usd("-1")
    with pytest.raises(ValueError):
        parse_usd("lots")


def test_periods_are_utc_calendar_periods() -> None:
    now = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)  # a Saturday
    assert period_bounds(Period.DAY, now) == (
        datetime(2026, 11, 21, tzinfo=UTC),
        datetime(2026, 11, 22, tzinfo=UTC),
    )
    assert period_bounds(Period.WEEK, now)[0] == datetime(2026, 11, 16, tzinfo=UTC)
    assert period_bounds(Period.MONTH, datetime(2026, 12, 31, tzinfo=UTC))[1] == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert period_bounds(Period.TOTAL, now) == (None, None)


def test_parse_request_names_unknown_and_mistyped_fields() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request({"prompt": "abc", "colour": "red"})
    assert caught.value.field == "colour"
    with pytest.raises(InvalidRequest) as caught:
        parse_request({"prompt": "abc", "model": "midjourney"})
    assert caught.value.field == "model"
    assert "nano-banana-2" in caught.value.allowed
