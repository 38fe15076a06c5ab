"""Admin and account commands: ``/budget show|set|remove``, ``/policy show|set``, ``/usage``.

Permissions are checked at runtime from the interaction (``default_permissions`` is only a
hint admins can override, platforms.md §5.5): Manage Server for server and per-person caps
and the server policy, Manage Channels (in that channel) for channel caps and policy. The
checks need no I/O, so refusals are ephemeral ``send_message``; everything else defers
ephemerally first and edits the answer in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import discord
from discord import app_commands

from adapters.discord.text import escape_text, fit_content
from adapters.discord.translate import ReplyHandle, origin_of, workspace_of
from bot.budgets import BudgetCap, CapScope, CapUsage, Period, cap_label
from bot.messages import describe_cap_usage
from bot.money import format_usd, parse_usd
from bot.policy import TOLERANCE_ORDER, ChannelPolicy
from bot.service import ImageService

__all__ = ["budget_group", "policy_group", "usage_command"]

log = logging.getLogger(__name__)

_SCOPES: Final = [
    app_commands.Choice(name="a person", value="user"),
    app_commands.Choice(name="a channel", value="channel"),
    app_commands.Choice(name="the whole server", value="server"),
]
_PERIODS: Final = [app_commands.Choice(name=p.value, value=p.value) for p in Period]
_TOLERANCES: Final = [app_commands.Choice(name=t, value=t) for t in TOLERANCE_ORDER]
_NONE: Final = discord.AllowedMentions.none()
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _handle(interaction: discord.Interaction[Any]) -> ReplyHandle:
    return ReplyHandle(
        application_id=interaction.application_id,
        issued_at=interaction.created_at.timestamp(),
        channel_id=interaction.channel_id or 0,
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
    )


def _who(cap: BudgetCap) -> str:
    if cap.scope is CapScope.USER:
        return f"<@{cap.scope_id}>"
    if cap.scope is CapScope.CHANNEL:
        return f"<#{cap.scope_id}>"
    return "the server"


def cap_lines(usages: Sequence[CapUsage], now: datetime) -> list[str]:
    """``"• <@1>, daily: $4.86 of $5.00 left (spent $0.14, held $0.00), resets …"``."""
    return [
        f"• {describe_cap_usage(u, _who(u.cap), now)}"
        for u in sorted(usages, key=lambda u: (u.cap.scope.value, u.cap.scope_id))
    ]


async def _answer(interaction: discord.Interaction[Any], text: str) -> None:
    await interaction.edit_original_response(content=fit_content(text), allowed_mentions=_NONE)


async def _deny(interaction: discord.Interaction[Any], need: str) -> None:
    await interaction.response.send_message(
        f"⚠️ You need the **{need}** permission for that.", ephemeral=True, allowed_mentions=_NONE
    )


def _channel_perms(
    interaction: discord.Interaction[Any], channel: app_commands.AppCommandChannel | None
) -> discord.Permissions:
    # Discord resolves a channel option with the invoker's permissions in that channel.
    if channel is None or channel.id == interaction.channel_id:
        return interaction.permissions
    return channel.permissions


def budget_group(service: ImageService, clock: Clock = _utcnow) -> app_commands.Group:
    """``/budget show`` (anyone: the caps that apply to them; admins: every cap) and
    ``/budget set|remove`` (Manage Server, or Manage Channels for a channel cap)."""
    group = app_commands.Group(
        name="budget", description="Spending caps in US dollars", guild_only=True
    )

    @group.command(name="show", description="The caps that apply to you (admins: all caps)")
    async def show(interaction: discord.Interaction[Any]) -> None:
        admin = interaction.permissions.manage_guild
        await interaction.response.defer(ephemeral=True, thinking=True)
        origin = origin_of(_handle(interaction), False)
        now = clock()
        mine = await service.budget(origin)
        lines = ["**Caps that apply to you here**"] + (
            cap_lines(mine, now) or ["• none: no spending cap applies to you here"]
        )
        if admin:
            lines += ["", "**Every cap on this server**"]
            lines += cap_lines(await service.caps(origin.workspace_id), now) or ["• none"]
        await _answer(interaction, "\n".join(lines))

    @group.command(name="set", description="Set a spending cap (US dollars per period)")
    @app_commands.describe(
        scope="Who the cap limits",
        limit="US dollars, e.g. 5 or 2.50",
        period="How often it starts again (UTC calendar periods)",
        user="The person (for a per-person cap)",
        channel="The channel (for a channel cap; default: this one)",
    )
    @app_commands.choices(scope=_SCOPES, period=_PERIODS)
    async def set_cap(
        interaction: discord.Interaction[Any],
        scope: str,
        limit: str,
        period: str = "day",
        user: discord.User | None = None,
        channel: app_commands.AppCommandChannel | None = None,
    ) -> None:
        await _change_cap(interaction, scope, period, user, channel, limit)

    @group.command(name="remove", description="Remove a spending cap")
    @app_commands.choices(scope=_SCOPES, period=_PERIODS)
    async def remove_cap(
        interaction: discord.Interaction[Any],
        scope: str,
        period: str = "day",
        user: discord.User | None = None,
        channel: app_commands.AppCommandChannel | None = None,
    ) -> None:
        await _change_cap(interaction, scope, period, user, channel, None)

    async def _change_cap(
        interaction: discord.Interaction[Any],
        scope: str,
        period: str,
        user: discord.User | None,
        channel: app_commands.AppCommandChannel | None,
        limit: str | None,
    ) -> None:
        if scope == "channel":
            if not _channel_perms(interaction, channel).manage_channels:
                await _deny(interaction, "Manage Channels")
                return
        elif not interaction.permissions.manage_guild:
            await _deny(interaction, "Manage Server")
            return
        if scope == "user" and user is None:
            await interaction.response.send_message(
                "⚠️ Name the person with the `user` option.", ephemeral=True
            )
            return
        try:
            micros = parse_usd(limit) if limit is not None else 0
        except ValueError:
            await interaction.response.send_message(
                f"⚠️ `{escape_text(limit or '', 40)}` is not an amount in US dollars "
                "(e.g. 5 or 2.50).",
                ephemeral=True,
                allowed_mentions=_NONE,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        workspace = workspace_of(interaction.guild_id, interaction.user.id)
        cap_scope, scope_id = {
            "user": (CapScope.USER, str(user.id) if user else ""),
            "channel": (CapScope.CHANNEL, str(channel.id if channel else interaction.channel_id)),
            "server": (CapScope.WORKSPACE, workspace),
        }[scope]
        cap = BudgetCap(
            scope=cap_scope,
            workspace_id=workspace,
            scope_id=scope_id,
            period=Period(period),
            limit_micros=micros,
        )
        label = f"{_who(cap)}'s {cap_label(cap).split()[-2]} cap"  # "<@1>'s daily cap"
        if limit is None:
            removed = await service.remove_cap(cap)
            await _answer(interaction, f"Removed {label}." if removed else "There was no such cap.")
            return
        await service.set_cap(cap)
        await _answer(interaction, f"Set {label} to {format_usd(micros)}.")

    return group


def policy_group(service: ImageService) -> app_commands.Group:
    """``/policy show`` and ``/policy set`` (the most permissive safety tolerance)."""
    group = app_commands.Group(
        name="policy",
        description="Safety policy: the most permissive tolerance allowed",
        guild_only=True,
    )

    async def effective(interaction: discord.Interaction[Any]) -> str:
        policy = await service.policy_for(origin_of(_handle(interaction), False))
        check = "forced on" if policy.force_check_content else "as requested"
        return (
            f"In <#{interaction.channel_id}> the most permissive safety tolerance is "
            f"**{policy.max_tolerance}** (strictest first: {' < '.join(TOLERANCE_ORDER)}); "
            f"the provider's content check is {check}."
        )

    @group.command(name="show", description="This channel's effective safety policy")
    async def show(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await _answer(interaction, await effective(interaction))

    @group.command(name="set", description="Set the most permissive safety tolerance")
    @app_commands.describe(
        max_tolerance="Most permissive level allowed (low is strictest)",
        scope="This channel (Manage Channels) or the whole server (Manage Server)",
        force_content_check="Always ask the provider to check content",
    )
    @app_commands.choices(
        max_tolerance=_TOLERANCES,
        scope=[
            app_commands.Choice(name="this channel", value="channel"),
            app_commands.Choice(name="the whole server", value="server"),
        ],
    )
    async def set_policy(
        interaction: discord.Interaction[Any],
        max_tolerance: str,
        scope: str = "channel",
        force_content_check: bool = False,
    ) -> None:
        if scope == "server" and not interaction.permissions.manage_guild:
            await _deny(interaction, "Manage Server")
            return
        if scope == "channel" and not interaction.permissions.manage_channels:
            await _deny(interaction, "Manage Channels")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        workspace = workspace_of(interaction.guild_id, interaction.user.id)
        channel = str(interaction.channel_id) if scope == "channel" else ""
        policy = ChannelPolicy.model_validate(
            {"max_tolerance": max_tolerance, "force_check_content": force_content_check}
        )
        await service.set_policy(workspace, channel, policy)
        where = "this channel" if channel else "the server"
        await _answer(
            interaction,
            f"Set {where}'s policy to **{max_tolerance}**. {await effective(interaction)}",
        )

    return group


def usage_command(service: ImageService) -> app_commands.Command[Any, ..., None]:
    """``/usage``: your own spend; admins (Manage Server) also see top spenders and channels."""

    @app_commands.command(name="usage", description="Spending in the current period")
    @app_commands.describe(period="day, week, month (UTC) or total")
    @app_commands.choices(period=_PERIODS)
    @app_commands.guild_only()
    async def usage(interaction: discord.Interaction[Any], period: str = "month") -> None:
        admin = interaction.permissions.manage_guild
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await service.usage_report(origin_of(_handle(interaction), False), Period(period))
        lines = [
            f"**Your spend this {period}**: {format_usd(report.own_spent_micros)} "
            f"(+ {format_usd(report.own_held_micros)} held for running jobs)"
        ]
        if admin:
            people = [
                f"• <@{uid}>: {format_usd(spent)} (+ {format_usd(held)} held)"
                for uid, spent, held in report.top_users
            ]
            channels = [
                f"• <#{cid}>: {format_usd(spent)} (+ {format_usd(held)} held)"
                for cid, spent, held in report.channels
            ]
            lines += ["", "**Top spenders**", *(people or ["• nobody yet"])]
            lines += ["", "**Channels**", *(channels or ["• none yet"])]
        await _answer(interaction, "\n".join(lines))

    return usage
