"""The discord.py client: commands, the context menu, buttons, modal submits and mentions.

Commands are built here and pushed to Discord only by ``bananabot discord sync`` (never on
start: ``on_ready`` fires many times and guilds get 200 command creates a day, §1.5).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import discord
from discord import app_commands

from adapters.discord.flows import Flows
from adapters.discord.translate import imagine_fields, parse_modal_id, ratio_choices
from adapters.discord.views import ResultButton
from bot.catalog import Catalog
from bot.errors import BananabotError
from bot.messages import render_error
from bot.policy import TOLERANCE_ORDER

__all__ = ["MAX_SEED", "BananaClient", "add_commands"]

log = logging.getLogger(__name__)

MAX_SEED: Final = 2**53 - 1
"""Discord integer options stop at 2^53; the models take seeds up to 2^63-1."""
_TIER_ORDER: Final = ("0.5K", "1K", "2K", "4K")
HTTP_CONNECTIONS: Final = 64
"""Keep-alive connections to Discord's REST API (discord.py's default is unbounded). A burst
of acks then reuses connections instead of opening (and TLS-handshaking) one each; with the
fake, p50/p99 ack latency of 200 concurrent commands dropped by about 40 %."""


class _Tree(app_commands.CommandTree[Any]):
    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CheckFailure):
            text = "⚠️ That command is not available here."
        else:
            name = interaction.command.qualified_name if interaction.command else None
            log.error("command failed", exc_info=error, extra={"command": name})
            text = f"⚠️ {render_error(BananabotError('unexpected error in a command'))}"
        try:
            if interaction.response.is_done():
                # After a (public) defer the first followup would edit the loading message
                # anyway, ignoring ``ephemeral`` (platforms.md): say so by editing it.
                await interaction.edit_original_response(
                    content=text, allowed_mentions=discord.AllowedMentions.none()
                )
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except (discord.HTTPException, RuntimeError):  # RuntimeError: closed while answering
            log.info("could not report a command error")


def add_commands(tree: app_commands.CommandTree[Any], flows: Flows, catalog: Catalog) -> None:
    """``/imagine`` (with aspect-ratio autocomplete), ``/show`` and "Imagine from this"."""
    models = [
        app_commands.Choice(name=catalog.model(name).display_name, value=name)
        for name in catalog.names
    ]
    tiers = {tier for name in catalog.names for tier in catalog.model(name).tiers}
    resolutions = [app_commands.Choice(name=t, value=t) for t in _TIER_ORDER if t in tiers]
    safety = [app_commands.Choice(name=t, value=t) for t in TOLERANCE_ORDER]

    @tree.command(name="imagine", description="Generate images with Nano Banana Pro / 2")
    @app_commands.describe(
        prompt="What to draw (or how to change the reference images)",
        model="Which model (default Nano Banana 2)",
        aspect_ratio="Width:height, e.g. 16:9 (the model's ratios are suggested)",
        resolution="Size tier (0.5K is Nano Banana 2 only)",
        seed="Same seed + same prompt = a similar picture",
        count="How many images (1-4)",
        safety="Safety tolerance (clamped to this channel's policy)",
        ref1="Reference image",
        ref2="Reference image",
        ref3="Reference image",
        ref4="Reference image",
    )
    @app_commands.choices(model=models, resolution=resolutions, safety=safety)
    async def imagine(
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, 6000],
        model: str | None = None,
        aspect_ratio: app_commands.Range[str, 1, 10] | None = None,
        resolution: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        safety: str | None = None,
        ref1: discord.Attachment | None = None,
        ref2: discord.Attachment | None = None,
        ref3: discord.Attachment | None = None,
        ref4: discord.Attachment | None = None,
    ) -> None:
        fields = imagine_fields(
            prompt=prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            seed=seed,
            count=count,
            safety=safety,
        )
        attachments = [a for a in (ref1, ref2, ref3, ref4) if a is not None]
        await flows.imagine(interaction, fields, attachments)

    @imagine.autocomplete("aspect_ratio")
    async def ratios(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        chosen = interaction.namespace
        found = ratio_choices(
            catalog, getattr(chosen, "model", None), getattr(chosen, "resolution", None), current
        )
        return [app_commands.Choice(name=r, value=r) for r in found]

    @tree.command(name="show", description="Re-post a past result here, with live buttons")
    @app_commands.describe(job="The job id (from the result's buttons or /usage)")
    async def show(
        interaction: discord.Interaction[Any], job: app_commands.Range[str, 1, 40]
    ) -> None:
        await flows.show(interaction, job)

    async def imagine_from_this(
        interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        await flows.imagine_from_message(interaction, message)

    tree.add_command(app_commands.ContextMenu(name="Imagine from this", callback=imagine_from_this))


class BananaClient(discord.Client):
    """The bot: a plain client with a command tree, result buttons and two listeners.

    Call :meth:`install` before starting it.

    Args:
        intents: gateway intents (see :func:`adapters.discord.gateway_intents`).
        guild_ready_timeout: seconds to wait for GUILD_CREATEs before ``on_ready``.
    """

    def __init__(self, *, intents: discord.Intents, guild_ready_timeout: float = 2.0) -> None:
        super().__init__(
            intents=intents,
            guild_ready_timeout=guild_ready_timeout,
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=200,
        )
        self.flows: Flows | None = None
        self.tree: app_commands.CommandTree[Any] = _Tree(self)
        self.connected = asyncio.Event()
        """Set once connected and ready (``on_ready``); usable before the client starts."""

    def install(
        self,
        flows: Flows,
        catalog: Catalog,
        extra: Sequence[app_commands.Command[Any, ..., Any] | app_commands.Group] = (),
    ) -> None:
        """Give the client its behaviour and commands (``/imagine``, ``/show``, the context
        menu, and ``extra`` such as the admin commands)."""
        self.flows = flows
        add_commands(self.tree, flows, catalog)
        for command in extra:
            self.tree.add_command(command)

    async def login(self, token: str) -> None:
        if self.http.connector is discord.utils.MISSING:  # made here: it needs a running loop
            self.http.connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS)
        await super().login(token)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ResultButton)

    async def on_ready(self) -> None:
        self.connected.set()
        log.info(
            "Discord connected",
            extra={"user": str(self.user), "guilds": len(self.guilds)},
        )

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        # discord.py keeps modals in memory only; ours are handled here, from the custom id.
        if self.flows is None or interaction.type is not discord.InteractionType.modal_submit:
            return
        ref = parse_modal_id(interaction.custom_id or "")
        if ref is None:
            return
        try:
            await self.flows.on_modal(interaction, ref)
        except Exception:
            log.exception("modal submit failed", extra={"custom_id": interaction.custom_id})

    async def on_message(self, message: discord.Message) -> None:
        if self.flows is None or self.user is None or message.author.id == self.user.id:
            return
        try:
            await self.flows.on_mention(message, self.user.id, self.application_id or self.user.id)
        except Exception:
            log.exception("mention request failed", extra={"message": message.id})
