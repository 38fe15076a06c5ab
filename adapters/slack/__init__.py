"""The Slack adapter (slack-bolt ``AsyncApp``): ``/imagine``, mentions with reference images,
result buttons, the Edit modal and the admin commands, in Socket Mode or HTTP mode.

``SlackAdapter`` is built by the composition root with the core service, is the
:class:`bot.interfaces.Delivery` of platform ``slack``, and serves until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.admin import Admin
from adapters.slack.app import Listeners, TaskSet, build_bolt_app
from adapters.slack.delivery import SlackDelivery
from adapters.slack.files import DEFAULT_FILE_HOSTS, SlackFiles
from adapters.slack.flows import Flows
from adapters.slack.outgoing import IMAGE_RETRY_DELAYS, Poster, api_error
from adapters.slack.translate import PLATFORM
from bot.errors import ConfigurationError
from bot.interfaces import MediaStore
from bot.models import JobUpdate
from bot.service import ImageService
from bot.settings import Settings

__all__ = ["DEFAULT_API_URL", "EVENTS_PATH", "SlackAdapter"]

log = logging.getLogger(__name__)

DEFAULT_API_URL: Final = "https://slack.com/api/"
EVENTS_PATH: Final = "/slack/events"
"""Where Slack posts commands, interactivity and events in HTTP mode."""
_AUTH_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"}
)


class SlackAdapter:
    """The Slack app on the core; serves once.

    Args:
        service: the core service.
        media: where result images are read from.
        bot_token: ``SLACK_BOT_TOKEN`` (``xoxb-…``).
        app_token: ``SLACK_APP_TOKEN`` (``xapp-…``, ``connections:write``): Socket Mode.
        signing_secret: ``SLACK_SIGNING_SECRET``: HTTP mode (needed without ``app_token``).
        api_url: Web API base (``SLACK_API_URL``), with a trailing slash.
        host, port: where HTTP mode listens (``BANANABOT_SLACK_PORT``; 0 picks a free port).
        admins: user ids that may change caps and policy (``BANANABOT_SLACK_ADMINS``).
        file_hosts: hosts that may receive the bot token for ``url_private`` downloads (the
            API host is added: a proxy or test server serves both).
        progress_interval: seconds between status-message updates of one job.
        image_retry_delays: seconds between attempts to show a just-uploaded image.
        http_timeout: seconds for one Web API call or file download.
        on_ack: told each acknowledgement's latency in seconds (metrics).

    Attributes:
        started: set once the adapter listens (HTTP) or is connected (Socket Mode).
        bound_port: the HTTP port once started (HTTP mode).

    Raises:
        ConfigurationError: no bot token, or neither an app token nor a signing secret.
    """

    platform: Final = PLATFORM

    def __init__(
        self,
        *,
        service: ImageService,
        media: MediaStore,
        bot_token: str,
        app_token: str | None = None,
        signing_secret: str | None = None,
        api_url: str = DEFAULT_API_URL,
        host: str = "127.0.0.1",
        port: int = 3000,
        admins: Iterable[str] = (),
        file_hosts: Iterable[str] = DEFAULT_FILE_HOSTS,
        progress_interval: float = 2.0,
        image_retry_delays: Sequence[float] = IMAGE_RETRY_DELAYS,
        http_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_ack: Callable[[float], None] | None = None,
    ) -> None:
        if not bot_token:
            raise ConfigurationError("SLACK_BOT_TOKEN is not set")
        if not app_token and not signing_secret:
            raise ConfigurationError(
                "Slack needs SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"
            )
        self.host = host
        self.port = port
        self.started = asyncio.Event()
        self.bound_port: int | None = None
        self._bot_token = bot_token
        self._app_token = app_token
        self._http_timeout = http_timeout
        self._file_hosts = frozenset({*file_hosts, urlsplit(api_url).netloc})
        self._session: aiohttp.ClientSession | None = None
        self._served = False
        self.client = AsyncWebClient(
            token=bot_token, base_url=api_url, timeout=int(max(1, http_timeout))
        )
        self.client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        self.poster = Poster(
            self.client,
            session=lambda: self._session,
            image_retry_delays=image_retry_delays,
            clock=clock,
        )
        self.delivery = SlackDelivery(
            poster=self.poster,
            catalog=service.catalog,
            media=media,
            progress_interval=progress_interval,
        )
        self.tasks = TaskSet()
        self.flows = Flows(service=service, poster=self.poster, files=self._files)
        admin = Admin(service=service, client=self.client, admins=admins)
        self.listeners = Listeners(
            flows=self.flows,
            admin=admin,
            poster=self.poster,
            catalog=service.catalog,
            tasks=self.tasks,
            clock=clock,
            on_ack=on_ack,
        )
        self.app = build_bolt_app(
            self.client, None if app_token else signing_secret, self.listeners
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        service: ImageService,
        media: MediaStore,
        on_ack: Callable[[float], None] | None = None,
    ) -> SlackAdapter:
        """The adapter as ``SLACK_*`` and ``BANANABOT_SLACK_HOST`` / ``_PORT`` / ``_ADMINS``
        configure it.

        Raises:
            ConfigurationError: ``SLACK_BOT_TOKEN`` is not set, or neither
                ``SLACK_APP_TOKEN`` nor ``SLACK_SIGNING_SECRET`` is.
        """
        if settings.slack_bot_token is None:
            raise ConfigurationError("SLACK_BOT_TOKEN is not set")
        app_token, secret = settings.slack_app_token, settings.slack_signing_secret
        return cls(
            service=service,
            media=media,
            bot_token=settings.slack_bot_token.get_secret_value(),
            app_token=app_token.get_secret_value() if app_token is not None else None,
            signing_secret=secret.get_secret_value() if secret is not None else None,
            api_url=settings.slack_api_url,
            host=settings.slack_host,
            port=settings.slack_port,
            admins=settings.slack_admins,
            http_timeout=min(settings.http_timeout, 30.0),
            on_ack=on_ack,
        )

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app token is set, else HTTP mode."""
        return bool(self._app_token)

    def _files(self) -> SlackFiles:
        if self._session is None:
            raise ConfigurationError("the Slack adapter is not serving")
        return SlackFiles(
            session=self._session,
            token=self._bot_token,
            hosts=self._file_hosts,
            timeout=self._http_timeout,
        )

    async def on_update(self, update: JobUpdate) -> None:
        """The core's delivery entry point (returns at once; sending happens in tasks)."""
        await self.delivery.on_update(update)

    async def idle(self) -> None:
        """Wait until the work started by listeners and deliveries has finished."""
        await self.tasks.idle()
        await self.delivery.idle()

    async def serve(self) -> None:
        """Connect (Socket Mode) or listen on ``host:port`` at ``/slack/events`` (HTTP mode)
        until cancelled; then stop listening, cancel running work and close connections.

        Raises:
            ConfigurationError: Slack refused the bot token or the app token.
        """
        if self._served:
            raise RuntimeError("a SlackAdapter serves once; build a new one")
        self._served = True
        timeout = aiohttp.ClientTimeout(total=self._http_timeout)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
            self._session = session
            self.client.session = session  # one connection pool for every Web API call
            try:
                await self._check_token()
                if self._app_token:
                    await self._serve_socket(self._app_token)
                else:
                    await self._serve_http()
            finally:
                self.started.clear()
                await self.tasks.close()
                await self.delivery.close()
                self.client.session = None
                self._session = None

    async def _check_token(self) -> None:
        """Fail fast on a token Slack refuses (bolt would only log it per request)."""
        try:
            await self.client.auth_test()
        except SlackApiError as exc:
            if api_error(exc) in _AUTH_ERRORS:
                raise ConfigurationError(
                    f"Slack refused SLACK_BOT_TOKEN ({api_error(exc)}); copy the Bot User "
                    "OAuth Token (xoxb-…) from OAuth & Permissions"
                ) from exc
            log.warning("auth.test failed at start", extra={"error": api_error(exc)})
        except SlackClientError as exc:
            log.warning("Slack unreachable at start", extra={"error": type(exc).__name__})

    async def _serve_socket(self, app_token: str) -> None:
        # slack-sdk retries a refused connection forever; ask once first to fail fast.
        try:
            await self.client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            raise ConfigurationError(
                f"Slack refused SLACK_APP_TOKEN ({api_error(exc)}); create an app-level "
                "token with connections:write (Basic Information) and enable Socket Mode"
            ) from exc
        handler = AsyncSocketModeHandler(self.app, app_token)
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack adapter connected (Socket Mode)")
            print("bananabot Slack adapter connected (Socket Mode)", file=sys.stderr, flush=True)
            self.started.set()
            await asyncio.Event().wait()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]

    async def _serve_http(self) -> None:
        web_app = web.Application(client_max_size=1024 * 1024)
        web_app.router.add_post(EVENTS_PATH, self._handle)
        web_app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.bound_port = int(runner.addresses[0][1])
            url = f"http://{self.host}:{self.bound_port}{EVENTS_PATH}"
            log.info("Slack adapter listening (HTTP mode)", extra={"url": url})
            print(f"bananabot Slack adapter on {url}", file=sys.stderr, flush=True)
            self.started.set()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        """Slack's POST: translate to bolt and back (bolt checks the signature)."""
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")
