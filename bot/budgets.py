"""Budget caps: scopes, periods and their windows; the arithmetic the store's reservation uses.

Money is integer micro-dollars. A cap belongs to a scope (a user in a workspace, a channel,
a workspace) and a period (day, week, month, total). Periods are calendar periods in UTC:
a day starts at 00:00 UTC, a week on Monday 00:00 UTC, a month on the 1st at 00:00 UTC. A
job's ledger entries all count in the period the job was reserved in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.errors import BudgetExceeded
from bot.models import BudgetLeft

__all__ = [
    "BudgetCap",
    "CapScope",
    "CapUsage",
    "Period",
    "cap_label",
    "first_exceeded",
    "period_bounds",
    "tightest",
]


class CapScope(StrEnum):
    """Who a cap limits."""

    USER = "user"
    CHANNEL = "channel"
    WORKSPACE = "workspace"


class Period(StrEnum):
    """How often a cap starts again."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


class BudgetCap(BaseModel):
    """A spending limit.

    Attributes:
        scope: user, channel or workspace.
        workspace_id: the workspace (guild, Slack team, ``local``).
        scope_id: the user id or channel id; the workspace id again for a workspace cap.
        period: day, week, month or total.
        limit_micros: the limit in micro-dollars (>= 0).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: CapScope
    workspace_id: str
    scope_id: str
    period: Period
    limit_micros: int = Field(ge=0)


@dataclass(frozen=True, slots=True)
class CapUsage:
    """A cap and what counts against it in the current period (micro-dollars).

    Attributes:
        spent_micros: settled charges.
        held_micros: reservations of jobs not yet settled or refunded.
        resets_at: start of the next period, None for a total cap.
    """

    cap: BudgetCap
    spent_micros: int
    held_micros: int
    resets_at: datetime | None

    @property
    def left_micros(self) -> int:
        return max(0, self.cap.limit_micros - self.spent_micros - self.held_micros)


def period_bounds(period: Period, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The current period's [start, end) in UTC; (None, None) for a total cap.

    Raises:
        ValueError: if ``now`` is naive (every time in bananabot is timezone-aware).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.TOTAL:
        return None, None
    if period is Period.DAY:
        return day, day + timedelta(days=1)
    if period is Period.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


_PERIOD_WORD = {
    Period.DAY: "daily",
    Period.WEEK: "weekly",
    Period.MONTH: "monthly",
    Period.TOTAL: "total",
}


def cap_label(cap: BudgetCap) -> str:
    """A person-facing name: "your daily cap", "this channel's weekly cap", ..."""
    word = _PERIOD_WORD[cap.period]
    if cap.scope is CapScope.USER:
        return f"your {word} cap"
    if cap.scope is CapScope.CHANNEL:
        return f"this channel's {word} cap"
    return f"this workspace's {word} cap"


def first_exceeded(usages: Sequence[CapUsage], estimate_micros: int) -> BudgetExceeded | None:
    """The refusal for reserving ``estimate_micros`` more, or None if every cap has room.

    The rule: spent + held + estimate must stay within each cap's limit. The tightest cap
    is named.
    """
    for usage in sorted(usages, key=lambda u: u.left_micros):
        if usage.spent_micros + usage.held_micros + estimate_micros > usage.cap.limit_micros:
            return BudgetExceeded(
                cap_label(usage.cap),
                usage.cap.limit_micros,
                usage.left_micros,
                estimate_micros,
                usage.resets_at,
            )
    return None


def tightest(usages: list[CapUsage]) -> BudgetLeft | None:
    """The cap with the least left, as shown to people after a job; None without caps."""
    if not usages:
        return None
    usage = min(usages, key=lambda u: u.left_micros)
    return BudgetLeft(
        cap=cap_label(usage.cap), left_micros=usage.left_micros, limit_micros=usage.cap.limit_micros
    )
