"""The Discord adapter (discord.py 2.x): ``/imagine``, result buttons, modals, mentions, admin.

``DiscordAdapter`` is built by the composition root with the core service and settings, is
the :class:`bot.interfaces.Delivery` of platform ``discord``, and serves until cancelled.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.admin import budget_group, policy_group, usage_command
from adapters.discord.client import BananaClient
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.flows import Flows
from adapters.discord.outgoing import Poster
from adapters.discord.translate import PLATFORM
from bot.errors import ConfigurationError
from bot.interfaces import MediaStore
from bot.models import JobUpdate
from bot.service import ImageService
from bot.settings import Settings

__all__ = [
    "BOT_PERMISSIONS",
    "DEFAULT_API_URL",
    "DiscordAdapter",
    "application_id_from_token",
    "gateway_intents",
    "invite_url",
    "point_discord_py",
]

log = logging.getLogger(__name__)

DEFAULT_API_URL: Final = "https://discord.com/api/v10"
BOT_PERMISSIONS: Final = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
)
"""What the bot needs: post results (Send Messages, Attach Files, Embed Links, also in
threads) and read the message a mention replies to (Read Message History)."""


def gateway_intents(*, message_content: bool = False) -> discord.Intents:
    """Guilds (channel NSFW flags, boost upload limits) and guild/DM messages (mention
    requests). Message Content is privileged and optional: mentions deliver their own text
    and attachments without it (platforms.md §5.3)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


def point_discord_py(api_url: str, gateway_url: str | None) -> Callable[[], None]:
    """Point discord.py's REST base (``Route.BASE``) and gateway at the configured URLs.

    discord.py has no setting for them, only these class attributes (they apply to the
    whole process). Returns a function that restores the previous values.
    """
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_url.rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway

    return restore


def application_id_from_token(token: str) -> int:
    """The application (bot user) id, which a bot token starts with in base64.

    Raises:
        ValueError: the token does not look like a Discord bot token.
    """
    first = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a Discord bot token") from exc
    if not decoded.isdigit():
        raise ValueError("not a Discord bot token")
    return int(decoded)


def invite_url(application_id: int) -> str:
    """The OAuth2 URL that adds the bot to a server: scopes ``bot applications.commands``
    with :data:`BOT_PERMISSIONS`."""
    return discord.utils.oauth_url(
        application_id,
        permissions=BOT_PERMISSIONS,
        scopes=("bot", "applications.commands"),
    )


class _NoVoice(logging.Filter):
    """Drops discord.py's start-up warnings about voice libraries: the bot never uses voice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


_NO_VOICE: Final = _NoVoice()


class DiscordAdapter:
    """The Discord bot on the core; serves once.

    Args:
        service: the core service.
        media: where result images are read from.
        token: the bot token (``DISCORD_TOKEN``).
        api_url: REST base (``DISCORD_API_URL``); a REST proxy can sit here.
        gateway_url: gateway websocket (``DISCORD_GATEWAY_URL``); None = discord.py's.
        guild_ids: guilds ``sync_commands`` copies the commands to (instant updates).
        token_lifetime: seconds an interaction token works (900; tests shorten it).
        message_content: request the privileged Message Content intent.
        progress_interval: seconds between progress edits of one job.
        guild_ready_timeout: seconds discord.py waits for guilds before ``on_ready``.
        on_ack: told each acknowledgement's latency in seconds, from the interaction's
            creation (its snowflake time, Discord's clock) to Discord accepting the ack.
    """

    platform: Final = PLATFORM

    def __init__(
        self,
        *,
        service: ImageService,
        media: MediaStore,
        token: str,
        api_url: str = DEFAULT_API_URL,
        gateway_url: str | None = None,
        guild_ids: Sequence[int] = (),
        token_lifetime: float = 900.0,
        message_content: bool = False,
        progress_interval: float = 2.0,
        guild_ready_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        on_ack: Callable[[float], None] | None = None,
    ) -> None:
        self._token = token
        self._api_url = api_url
        self._gateway_url = gateway_url
        self._guild_ids = tuple(guild_ids)
        logging.getLogger("discord.client").addFilter(_NO_VOICE)  # idempotent
        catalog = service.catalog
        self.client = BananaClient(
            intents=gateway_intents(message_content=message_content),
            guild_ready_timeout=guild_ready_timeout,
        )
        poster = Poster(self.client, token_lifetime=token_lifetime, clock=clock)
        self.delivery = DiscordDelivery(
            poster=poster, catalog=catalog, media=media, progress_interval=progress_interval
        )
        self.flows = Flows(service=service, delivery=self.delivery, clock=clock, on_ack=on_ack)
        self.client.install(
            self.flows,
            catalog,
            [
                budget_group(service),
                policy_group(service),
                usage_command(service),
            ],
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        service: ImageService,
        media: MediaStore,
        message_content: bool | None = None,
        progress_interval: float = 2.0,
        guild_ready_timeout: float = 2.0,
        on_ack: Callable[[float], None] | None = None,
    ) -> DiscordAdapter:
        """The adapter as ``DISCORD_*`` and ``BANANABOT_DISCORD_*`` configure it.

        Raises:
            ConfigurationError: ``DISCORD_TOKEN`` is not set.
        """
        if settings.discord_token is None:
            raise ConfigurationError("DISCORD_TOKEN is not set")
        return cls(
            service=service,
            media=media,
            token=settings.discord_token.get_secret_value(),
            api_url=settings.discord_api_url,
            gateway_url=settings.discord_gateway_url,
            guild_ids=settings.discord_guild_ids,
            token_lifetime=settings.discord_token_lifetime,
            message_content=(
                settings.discord_message_content if message_content is None else message_content
            ),
            progress_interval=progress_interval,
            guild_ready_timeout=guild_ready_timeout,
            on_ack=on_ack,
        )

    async def on_update(self, update: JobUpdate) -> None:
        """The core's delivery entry point (returns at once; sending happens in tasks)."""
        await self.delivery.on_update(update)

    async def serve(self) -> None:
        """Log in, connect and answer until cancelled; then close the connection cleanly.

        Raises:
            ConfigurationError: Discord refused the token or a privileged intent.
        """
        restore = point_discord_py(self._api_url, self._gateway_url)
        try:
            async with self.client:
                try:
                    await self.client.start(self._token)
                except discord.LoginFailure as exc:
                    raise ConfigurationError(
                        "Discord refused DISCORD_TOKEN; copy the bot token from the "
                        "Developer Portal (Bot → Reset Token)"
                    ) from exc
                except discord.PrivilegedIntentsRequired as exc:
                    raise ConfigurationError(
                        "Discord refused the Message Content intent; enable it in the "
                        "Developer Portal (Bot → Privileged Gateway Intents) or turn it off"
                    ) from exc
                finally:
                    await self.flows.drain()
                    await self.delivery.close()
        finally:
            restore()

    async def sync_commands(self) -> list[str]:
        """Push the commands to Discord (REST only, no gateway): to each of ``guild_ids``
        (instant) if any, else globally. Returns one line per scope with the command names.

        Raises:
            ConfigurationError: Discord refused the token.
            discord.HTTPException: Discord refused the commands.
        """
        restore = point_discord_py(self._api_url, self._gateway_url)
        lines = []
        try:
            async with self.client:
                try:
                    await self.client.login(self._token)
                except discord.LoginFailure as exc:
                    raise ConfigurationError("Discord refused DISCORD_TOKEN") from exc
                tree = self.client.tree
                for guild_id in self._guild_ids:
                    guild = discord.Object(id=guild_id)
                    tree.copy_global_to(guild=guild)
                    synced = await tree.sync(guild=guild)
                    lines.append(f"guild {guild_id}: {', '.join(c.name for c in synced)}")
                if not self._guild_ids:
                    synced = await tree.sync()
                    lines.append(f"global: {', '.join(c.name for c in synced)}")
        finally:
            restore()
        return lines
