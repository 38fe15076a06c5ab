"""The local web playground: an aiohttp server and the ``web`` platform's :class:`Delivery`.

Built the way chat adapters must work: the HTTP answer comes as soon as the job is queued,
the work happens in the core's workers, progress arrives through :meth:`on_update` and is
pushed to the browser session that asked (Server-Sent Events), and buttons carry only a job
id and an image index; everything else is read back from the store.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from adapters.web.api import SESSION, PlaygroundApi, json_response
from adapters.web.events import SessionHub
from adapters.web.translate import PLATFORM, error_status, error_view
from adapters.web.wire import ErrorDetail, ErrorView
from bot.errors import BananabotError, UserInputError
from bot.interfaces import MediaStore
from bot.models import JobUpdate
from bot.service import ImageService

__all__ = ["SECURITY_HEADERS", "SESSION_COOKIE", "STATIC_DIR", "WebPlayground"]

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).with_name("static")
SESSION_COOKIE: Final = "bb_session"
SESSION_MAX_AGE: Final = 30 * 86_400
_SESSION_ID: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_NEW_SESSION: Final = web.RequestKey("bb_new_session", bool)
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _valid_session(value: str | None) -> bool:
    return value is not None and 22 <= len(value) <= 64 and set(value) <= _SESSION_ID


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response(ErrorView(error=ErrorDetail(code=code, message=message)), status)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebPlayground:
    """The playground server and the delivery of every job whose origin platform is ``web``.

    Args:
        service: the core service (submit, act, read jobs and budgets).
        media: the media store results are served from.
        host: interface to listen on; loopback by default.
        port: TCP port; 0 picks a free one (see :attr:`bound_port` after :attr:`started`).
        user_id: the person every playground job belongs to.
        ping_interval: seconds between keep-alive comments on a quiet event stream.
        shutdown_timeout: seconds open requests get to finish when the server stops.
        extra_routes: routes served beside the playground's, outside its guard (the
            operations routes ``/healthz``, ``/metrics`` and ``/media/<token>``, which
            monitoring and providers reach under other host names).

    Attributes:
        started: set once the server listens.
        bound_port: the port it listens on, once started.
    """

    platform: Final = PLATFORM

    def __init__(
        self,
        service: ImageService,
        media: MediaStore,
        host: str = "127.0.0.1",
        port: int = 8080,
        user_id: str = "local",
        *,
        ping_interval: float = 15.0,
        shutdown_timeout: float = 5.0,
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self._extra_routes = tuple(extra_routes)
        self._open_handlers = frozenset(route.handler for route in self._extra_routes)
        self.host = host
        self.port = port
        self.user_id = user_id
        self.started = asyncio.Event()
        self.bound_port: int | None = None
        self._shutdown_timeout = shutdown_timeout
        self._hub = SessionHub()
        self._api = PlaygroundApi(
            service=service,
            media=media,
            hub=self._hub,
            user_id=user_id,
            ping_interval=ping_interval,
        )
        self._allowed_hosts: frozenset[str] | None = None

    @property
    def url(self) -> str:
        """``http://host:port/`` once started (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.bound_port if self.bound_port is not None else self.port}/"

    async def on_update(self, update: JobUpdate) -> None:
        """Push a job update to the event streams of the browser session that owns the job.

        Never blocks: events go to bounded per-session queues (oldest dropped on overflow).
        """
        if update.job.origin.platform != self.platform:
            return
        self._api.publish(update)

    def make_app(self) -> web.Application:
        """The aiohttp application: pages, static files, JSON API, events and media."""
        app = web.Application(middlewares=[self._middleware()], client_max_size=1024**2)
        app.router.add_get("/", self._index)
        app.router.add_routes(self._extra_routes)
        app.router.add_static(
            "/static/",
            STATIC_DIR,
            show_index=False,
            follow_symlinks=False,
        )
        app.router.add_routes(self._api.routes())
        app.on_response_prepare.append(self._on_prepare)
        return app

    async def serve(self) -> None:
        """Listen until cancelled, then end event streams and close every connection.

        Prints ``bananabot playground on http://HOST:PORT/`` to stderr (and logs it at INFO)
        once listening, then sets :attr:`started`. A playground serves once.
        """
        runner = web.AppRunner(
            self.make_app(), access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.bound_port = int(runner.addresses[0][1])
            self._allowed_hosts = self._host_names(self.bound_port)
            log.info("bananabot playground on %s", self.url, extra={"url": self.url})
            print(f"bananabot playground on {self.url}", file=sys.stderr, flush=True)
            self.started.set()
            await asyncio.Event().wait()
        finally:
            self._hub.close()
            await runner.cleanup()
            self.started.clear()

    def _host_names(self, port: int) -> frozenset[str] | None:
        """Host headers accepted on a loopback address (defeats DNS rebinding); None = any."""
        if not _is_loopback(self.host):
            return None
        names = {
            "localhost",
            "127.0.0.1",
            "[::1]",
            self.host if ":" not in self.host else f"[{self.host}]",
        }
        return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))

    # --- plumbing -------------------------------------------------------------------------

    def _middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.match_info.handler in self._open_handlers:
                return await handler(request)
            refused = self._refusal(request)
            if refused is not None:
                return refused
            cookie = request.cookies.get(SESSION_COOKIE)
            session = cookie if _valid_session(cookie) else None
            request[_NEW_SESSION] = session is None
            request[SESSION] = session or secrets.token_urlsafe(24)
            api = request.path.startswith(("/api/", "/media/"))
            try:
                return await handler(request)
            except web.HTTPException as exc:
                if not api or exc.status < 400:
                    raise
                return _error(exc.status, "http_error", exc.reason)
            except BananabotError as exc:
                level = logging.INFO if isinstance(exc, UserInputError) else logging.ERROR
                log.log(level, "request refused", extra={"path": request.path, "code": exc.code})
                return json_response(error_view(exc), error_status(exc))
            except Exception:
                log.exception("request failed", extra={"path": request.path})
                return json_response(error_view(BananabotError("internal")), 500)

        return guard

    def _refusal(self, request: web.Request) -> web.Response | None:
        """A 403 for a foreign ``Host`` (DNS rebinding) or a cross-origin unsafe request."""
        if self._allowed_hosts is not None and request.host not in self._allowed_hosts:
            return _error(403, "forbidden_host", "This address is not the playground's.")
        if request.method in _SAFE_METHODS:
            return None
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if site is not None and site not in ("same-origin", "none"):
            return _error(403, "cross_origin", "Requests from other sites are refused.")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _error(403, "cross_origin", "Requests from other sites are refused.")
        return None

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.get(_NEW_SESSION) and SESSION in request:
            # Headers are final here, so the cookie is added as a header, not set_cookie().
            # The id is URL-safe base64: nothing in it needs quoting.
            response.headers.add(
                "Set-Cookie",
                f"{SESSION_COOKIE}={request[SESSION]}; Max-Age={SESSION_MAX_AGE}; Path=/; "
                "HttpOnly; SameSite=Strict",
            )

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
