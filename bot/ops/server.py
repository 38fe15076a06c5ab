"""The HTTP server every ``bananabot run`` starts: ``/healthz``, ``/metrics``, the
time-limited reference links ``/media/<token>`` that link-only providers fetch, and
``POST /callbacks/<provider>`` for providers that call back when a run ends (Runflow).

When the playground runs, it serves these same routes on its own port instead (one
server, one port: ``BANANABOT_WEB_HOST`` / ``BANANABOT_WEB_PORT``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web

from bot.interfaces import MediaStore
from bot.media.images import MIME_FOR_EXTENSION
from bot.media.links import LINK_PATH, MediaLinks
from bot.ops.metrics import CONTENT_TYPE, Metrics

__all__ = ["HealthCheck", "OpsServer"]

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[None]]
"""Raises when what it checks is unwell; a check taking over 2 s counts as failed."""

Callback = Callable[[bytes, Mapping[str, str]], int]
"""Takes a provider's callback (raw body, headers) and returns the HTTP status to answer
(:meth:`bot.providers.runflow.CallbackReceiver.receive`)."""

_CHECK_TIMEOUT: Final = 2.0


class OpsServer:
    """Serves ``/healthz``, ``/metrics`` and ``/media/<token>``.

    Args:
        metrics: the process's metrics (rendered at each scrape).
        checks: name -> a health check; ``/healthz`` answers 200 when all pass, else 503,
            with ``{"status": "ok" | "failing", "checks": {name: "ok" | reason}}``.
        media: where reference bytes are read from.
        links: checks link tokens; None: ``/media/<token>`` answers 404 (no public URL).
        callbacks: provider name -> what takes its callbacks at ``/callbacks/<name>``
            (an unknown name answers 404).
        host, port: where to listen (port 0 picks a free one, see :attr:`bound_port`).

    Attributes:
        started: set once listening.
    """

    def __init__(
        self,
        *,
        metrics: Metrics,
        checks: Mapping[str, HealthCheck],
        media: MediaStore,
        links: MediaLinks | None,
        callbacks: Mapping[str, Callback] | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self._checks = dict(checks)
        self._media = media
        self._links = links
        self._callbacks = dict(callbacks or {})
        self.host = host
        self.port = port
        self.bound_port: int | None = None
        self.started = asyncio.Event()
        self._shutdown_timeout = shutdown_timeout

    def routes(self) -> list[web.RouteDef]:
        """The operations routes, for this server or the playground to serve."""
        return [
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics_page),
            web.get(LINK_PATH + r"{token:[A-Za-z0-9_.\-]{20,400}}", self.reference),
            web.post(r"/callbacks/{provider:[a-z0-9_]{1,40}}", self.callback),
        ]

    async def serve(self) -> None:
        """Listen until cancelled."""
        app = web.Application()
        app.router.add_routes(self.routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.bound_port = int(runner.addresses[0][1])
            log.info(
                "ops server listening",
                extra={
                    "host": self.host,
                    "port": self.bound_port,
                    "paths": "/healthz /metrics /media/<token> /callbacks/<provider>",
                },
            )
            host = f"[{self.host}]" if ":" in self.host else self.host
            print(
                f"bananabot operations on http://{host}:{self.bound_port}/ "
                "(/healthz, /metrics, /media/<token>)",
                file=sys.stderr,
                flush=True,
            )
            self.started.set()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            self.started.clear()

    async def healthz(self, request: web.Request) -> web.Response:
        """``GET /healthz``: 200 when every check passes within 2 s, else 503."""
        results: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT):
                    await check()
                results[name] = "ok"
            except TimeoutError:
                results[name] = f"no answer within {_CHECK_TIMEOUT:g} s"
            except Exception as exc:
                log.warning("health check failed", extra={"check": name}, exc_info=True)
                results[name] = f"failing ({type(exc).__name__})"
        healthy = all(value == "ok" for value in results.values())
        body = {"status": "ok" if healthy else "failing", "checks": results}
        return web.Response(
            text=json.dumps(body),
            status=200 if healthy else 503,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def metrics_page(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the Prometheus text format; 503 if the store cannot answer."""
        try:
            body = await self.metrics.render()
        except Exception:
            log.exception("metrics failed")
            return web.Response(status=503, text="the store did not answer\n")
        response = web.Response(body=body, headers={"Cache-Control": "no-store"})
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def callback(self, request: web.Request) -> web.Response:
        """``POST /callbacks/<provider>``: a provider says a run ended (bodies up to 1 MiB,
        aiohttp's limit; larger ones get 413)."""
        receive = self._callbacks.get(request.match_info["provider"])
        if receive is None:
            return web.Response(status=404, text="no such callback\n")
        status = receive(await request.read(), request.headers)
        return web.Response(status=status, text="ok\n" if status == 200 else "refused\n")

    async def reference(self, request: web.Request) -> web.Response:
        """``GET /media/<token>``: a reference image's bytes while its link is valid, else 404
        (the same answer for a forged, expired or unknown token: nothing to probe)."""
        key = self._links.resolve(request.match_info["token"]) if self._links else None
        if key is None:
            raise web.HTTPNotFound(text="no such image (the link may have expired)\n")
        try:
            data = await self._media.get(key)
        except Exception as exc:
            raise web.HTTPNotFound(text="no such image (the link may have expired)\n") from exc
        return web.Response(
            body=data,
            content_type=MIME_FOR_EXTENSION[key.rsplit(".", 1)[1]],
            headers={
                "Cache-Control": "private, max-age=300",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Referrer-Policy": "no-referrer",
            },
        )
