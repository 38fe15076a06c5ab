"""``/imagine-budget``, ``/imagine-policy`` and ``/imagine-usage``: caps, safety policy, spend.

Anyone may look; changing caps or the policy needs a workspace admin or owner (``is_admin``,
``is_owner``, ``is_primary_owner`` from ``users.info``) or a user id listed in
``BANANABOT_SLACK_ADMINS``. Slack has no per-command permissions for slash commands, so the
check runs here, on every change. Answers are ephemeral ``mrkdwn`` text.

Syntax (``<@U…>`` and ``<#C…>`` are what Slack sends for mentions with ``should_escape``)::

    /imagine-budget [show]
    /imagine-budget set user|channel|workspace <usd> [day|week|month|total] [@person|#channel]
    /imagine-budget remove user|channel|workspace [day|week|month|total] [@person|#channel]
    /imagine-policy [show]
    /imagine-policy set low|medium|high|none|off [channel|workspace] [--check-content]
    /imagine-usage [day|week|month|total]
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.translate import ReplyHandle, origin_for
from bot.budgets import BudgetCap, CapScope, CapUsage, Period, cap_label
from bot.messages import describe_cap_usage
from bot.money import format_usd, parse_usd
from bot.policy import TOLERANCE_ORDER, ChannelPolicy
from bot.service import ImageService

__all__ = ["BUDGET_USAGE", "POLICY_USAGE", "Admin", "cap_lines"]

log = logging.getLogger(__name__)

BUDGET_USAGE: Final = (
    "Usage: `/imagine-budget [show]`, `/imagine-budget set user|channel|workspace <usd> "
    "[day|week|month|total] [@person|#channel]`, `/imagine-budget remove "
    "user|channel|workspace [period] [@person|#channel]`"
)
POLICY_USAGE: Final = (
    "Usage: `/imagine-policy [show]`, `/imagine-policy set low|medium|high|none|off "
    "[channel|workspace] [--check-content]` (low is the strictest)"
)
DENIED: Final = (
    "⚠️ Only workspace admins and owners (or people listed in BANANABOT_SLACK_ADMINS) can "
    "change budgets and the safety policy."
)
_USER_RE: Final = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|^([UW][A-Z0-9]{2,})$")
_CHANNEL_RE: Final = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>|^([CGD][A-Z0-9]{2,})$")
_PERIODS: Final = tuple(p.value for p in Period)
_SCOPES: Final = ("user", "channel", "workspace")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _who(cap: BudgetCap) -> str:
    if cap.scope is CapScope.USER:
        return f"<@{cap.scope_id}>"
    if cap.scope is CapScope.CHANNEL:
        return f"<#{cap.scope_id}>"
    return "the workspace"


def cap_lines(usages: Sequence[CapUsage], now: datetime) -> list[str]:
    """``"• <@U1>, day: $4.86 of $5.00 left (spent $0.14, held $0.00), resets …"``."""
    return [
        f"• {describe_cap_usage(u, _who(u.cap), now)}"
        for u in sorted(usages, key=lambda u: (u.cap.scope.value, u.cap.scope_id))
    ]


def _target(pattern: re.Pattern[str], words: Iterable[str]) -> str | None:
    for word in words:
        match = pattern.search(word)
        if match:
            return match[1] or match[2]
    return None


class Admin:
    """The admin commands.

    Args:
        service: the core service (budgets that apply, effective policy, usage reports).
        client: the Web API client (``users.info``).
        admins: Slack user ids that may always change caps and policy.
        cache_seconds: how long a ``users.info`` answer is trusted.
    """

    def __init__(
        self,
        *,
        service: ImageService,
        client: AsyncWebClient,
        admins: Iterable[str] = (),
        cache_seconds: float = 300.0,
        clock: Clock = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._client = client
        self._admins = frozenset(a.strip() for a in admins if a.strip())
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, bool]] = {}

    async def is_admin(self, user_id: str) -> bool:
        """Listed in ``admins``, or a workspace admin or owner according to ``users.info``."""
        if user_id in self._admins:
            return True
        cached = self._cache.get(user_id)
        if cached is not None and self._monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            user = (await self._client.users_info(user=user_id))["user"]
        except (SlackApiError, SlackClientError) as exc:
            log.warning("users.info failed; treating the user as a member", exc_info=exc)
            return False
        allowed = any(bool(user.get(k)) for k in ("is_admin", "is_owner", "is_primary_owner"))
        self._cache[user_id] = (self._monotonic(), allowed)
        return allowed

    # --- /imagine-budget ------------------------------------------------------------------

    async def budget(self, team_id: str, handle: ReplyHandle, text: str) -> str:
        """The answer to ``/imagine-budget <text>``."""
        words = text.split()
        verb = words[0].lower() if words else "show"
        if verb == "show":
            return await self._show_caps(team_id, handle)
        if verb not in ("set", "remove"):
            return f"⚠️ Unknown subcommand {verb!r}. {BUDGET_USAGE}"
        if not await self.is_admin(handle.user):
            return DENIED
        rest = [w.lower() for w in words[1:]]
        scope = next((w for w in rest if w in _SCOPES), None)
        if scope is None:
            return f"⚠️ Say whose cap: user, channel or workspace. {BUDGET_USAGE}"
        period = next((w for w in rest if w in _PERIODS), "day")
        amount = next(
            (w for w in words[1:] if re.fullmatch(r"\$?[0-9][0-9,]*(\.[0-9]+)?", w)), None
        )
        if verb == "set" and amount is None:
            return f"⚠️ Give the cap in US dollars, e.g. 5 or 2.50. {BUDGET_USAGE}"
        scope_id = team_id
        if scope == "user":
            found = _target(_USER_RE, words[1:])
            if found is None:
                return "⚠️ Name the person with an @mention. " + BUDGET_USAGE
            scope_id = found
        elif scope == "channel":
            scope_id = _target(_CHANNEL_RE, words[1:]) or handle.channel
        try:
            micros = parse_usd(amount) if amount is not None else 0
        except ValueError:
            return f"⚠️ {amount} is not an amount in US dollars (e.g. 5 or 2.50)."
        cap = BudgetCap(
            scope=CapScope(scope),
            workspace_id=team_id,
            scope_id=scope_id,
            period=Period(period),
            limit_micros=micros,
        )
        label = cap_label(cap).replace("your", f"{_who(cap)}'s")
        if verb == "remove":
            removed = await self._service.remove_cap(cap)
            return f"Removed {label}." if removed else "There was no such cap."
        await self._service.set_cap(cap)
        log.info("cap set", extra={"scope": cap.scope.value, "limit_micros": micros})
        return f"Set {label} to {format_usd(micros)}."

    async def _show_caps(self, team_id: str, handle: ReplyHandle) -> str:
        now = self._clock()
        mine = await self._service.budget(origin_for(team_id, handle))
        lines = ["*Caps that apply to you here*"]
        lines += cap_lines(mine, now) or ["• none: no spending cap applies to you here"]
        if await self.is_admin(handle.user):
            lines += ["", "*Every cap in this workspace*"]
            lines += cap_lines(await self._service.caps(team_id), now) or ["• none"]
        return "\n".join(lines)

    # --- /imagine-policy ------------------------------------------------------------------

    async def policy(self, team_id: str, handle: ReplyHandle, text: str) -> str:
        """The answer to ``/imagine-policy <text>``."""
        words = text.split()
        verb = words[0].lower() if words else "show"
        if verb == "show":
            return await self._effective(team_id, handle)
        if verb != "set":
            return f"⚠️ Unknown subcommand {verb!r}. {POLICY_USAGE}"
        if not await self.is_admin(handle.user):
            return DENIED
        rest = [w.lower() for w in words[1:]]
        level = next((w for w in rest if w in TOLERANCE_ORDER), None)
        if level is None:
            return f"⚠️ Name the most permissive level: {', '.join(TOLERANCE_ORDER)}. {POLICY_USAGE}"
        channel = "" if "workspace" in rest else handle.channel
        policy = ChannelPolicy.model_validate(
            {"max_tolerance": level, "force_check_content": "--check-content" in rest}
        )
        await self._service.set_policy(team_id, channel, policy)
        where = f"<#{channel}>" if channel else "the workspace"
        log.info("policy set", extra={"level": level, "channel_scope": bool(channel)})
        return f"Set {where}'s policy to *{level}*. {await self._effective(team_id, handle)}"

    async def _effective(self, team_id: str, handle: ReplyHandle) -> str:
        policy = await self._service.policy_for(origin_for(team_id, handle))
        check = "forced on" if policy.force_check_content else "as requested"
        return (
            f"In <#{handle.channel}> the most permissive safety tolerance is "
            f"*{policy.max_tolerance}* (strictest first: {' < '.join(TOLERANCE_ORDER)}); "
            f"the provider's content check is {check}."
        )

    # --- /imagine-usage -------------------------------------------------------------------

    async def usage(self, team_id: str, handle: ReplyHandle, text: str) -> str:
        """The answer to ``/imagine-usage [period]``: own spend; admins see top spenders."""
        word = (text.split() or ["month"])[0].lower()
        if word not in _PERIODS:
            return f"⚠️ {word!r} is not a period. Allowed: {', '.join(_PERIODS)}."
        report = await self._service.usage_report(origin_for(team_id, handle), Period(word))
        lines = [
            f"*Your spend this {word}*: {format_usd(report.own_spent_micros)} "
            f"(+ {format_usd(report.own_held_micros)} held for running jobs)"
        ]
        if await self.is_admin(handle.user):
            people = [
                f"• <@{uid}>: {format_usd(spent)} (+ {format_usd(held)} held)"
                for uid, spent, held in report.top_users
            ]
            channels = [
                f"• <#{cid}>: {format_usd(spent)} (+ {format_usd(held)} held)"
                for cid, spent, held in report.channels
            ]
            lines += ["", "*Top spenders*", *(people or ["• nobody yet"])]
            lines += ["", "*Channels*", *(channels or ["• none yet"])]
        return "\n".join(lines)
