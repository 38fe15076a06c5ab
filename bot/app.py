"""The composition root: builds every long-lived object once and runs adapters and workers."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bot.catalog import Catalog, default_catalog, load_catalog
from bot.delivery import DeliveryPump, DeliveryRouter
from bot.errors import ConfigurationError
from bot.health import ProviderHealth
from bot.interfaces import Provider, ReferenceLinks, Telemetry
from bot.media.guard import guarded_client
from bot.media.links import MediaLinks, load_or_create_secret
from bot.media.loader import MediaReferenceLoader
from bot.media.store import FileMediaStore
from bot.ops.metrics import Metrics
from bot.ops.server import Callback, OpsServer
from bot.policy import ChannelPolicy
from bot.providers.gemini.client import GeminiProvider
from bot.providers.runbase import RunbaseProvider, shared_limiter
from bot.providers.runflow import CALLBACK_PATH, CallbackReceiver, RunflowProvider
from bot.providers.runware.client import RunwareProvider
from bot.providers.sandbox.provider import SandboxProvider
from bot.service import ImageService
from bot.settings import Settings
from bot.storage import SqliteStore, Store, store_from_url
from bot.worker import Worker

__all__ = [
    "App",
    "assemble_core",
    "build_app",
    "build_catalog",
    "build_links",
    "build_providers",
    "run",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class App:
    """The running core: what adapters and the CLI are given."""

    settings: Settings
    catalog: Catalog
    store: Store
    media: FileMediaStore
    providers: Mapping[str, Provider]
    router: DeliveryRouter
    service: ImageService
    worker: Worker
    metrics: Metrics
    links: MediaLinks | None
    callbacks: Mapping[str, Callback]
    """Provider name -> what takes its run callbacks at ``/callbacks/<name>``."""


def build_catalog(settings: Settings) -> Catalog:
    """The seed catalog, with ``BANANABOT_CATALOG_FILE`` (JSON overrides) applied.

    Raises:
        ConfigurationError: the file is unreadable or has unknown fields.
    """
    if settings.catalog_file is None:
        return default_catalog()
    try:
        overrides: dict[str, dict[str, Any]] = json.loads(settings.catalog_file.read_text("utf-8"))
        return load_catalog(overrides)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"BANANABOT_CATALOG_FILE: {exc}") from exc


def build_links(settings: Settings) -> MediaLinks | None:
    """Reference links at ``BANANABOT_PUBLIC_URL/media/<token>``, or None without a public URL.

    The signing secret is ``BANANABOT_MEDIA_LINK_SECRET``, else a random one kept beside the
    media (``BANANABOT_DATA_DIR/media-link-secret``), shared by every process on that folder.

    Raises:
        ConfigurationError: the secret file cannot be read or made, or the secret is short.
    """
    if settings.public_url is None:
        return None
    try:
        secret = (
            settings.media_link_secret.get_secret_value()
            if settings.media_link_secret is not None
            else load_or_create_secret(settings.data_dir / "media-link-secret")
        )
        return MediaLinks(settings.public_url, secret, settings.media_link_ttl)
    except OSError as exc:
        raise ConfigurationError(f"cannot keep the media link secret: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"BANANABOT_MEDIA_LINK_SECRET: {exc}") from exc


def build_providers(settings: Settings, client: httpx.AsyncClient) -> dict[str, Provider]:
    """Every provider that can run here: each one whose key is set; the sandbox always.

    Raises:
        ConfigurationError: ``BANANABOT_PROVIDERS`` names a provider without its key, or an
            unknown one.
    """
    providers: dict[str, Provider] = {
        "sandbox": SandboxProvider(delay=settings.sandbox_delay),
    }
    if settings.runware_api_key is not None:
        providers["runware"] = RunwareProvider(
            api_key=settings.runware_api_key.get_secret_value(),
            api_url=settings.runware_api_url,
            client=client,
            model_ids={
                "nano-banana-pro": settings.runware_model_pro,
                "nano-banana-2": settings.runware_model_nb2,
            },
            poll_initial=settings.poll_initial,
            poll_max=settings.poll_max,
            deadline=settings.provider_deadline,
        )
    if settings.runflow_api_key is not None:
        providers["runflow"] = RunflowProvider(
            api_key=settings.runflow_api_key.get_secret_value(),
            api_url=settings.runflow_api_url,
            client=client,
            model_paths={
                "nano-banana-pro": settings.runflow_model_pro,
                "nano-banana-2": settings.runflow_model_nb2,
            },
            callback_url=(
                None if settings.public_url is None else settings.public_url + CALLBACK_PATH
            ),
            poll_initial=settings.poll_initial,
            poll_max=settings.poll_max,
            deadline=settings.provider_deadline,
        )
    if settings.runbase_api_key is not None:
        providers["runbase"] = RunbaseProvider(
            api_key=settings.runbase_api_key.get_secret_value(),
            api_url=settings.runbase_api_url,
            client=client,
            # One limiter per key and process: Runbase allows 20 requests per 10 s per key.
            limiter=shared_limiter(settings.runbase_rate_limit, settings.runbase_rate_window),
            model_ids={
                "nano-banana-pro": settings.runbase_model_pro,
                "nano-banana-2": settings.runbase_model_nb2,
            },
            poll_initial=settings.poll_initial,
            poll_max=settings.poll_max,
            deadline=settings.provider_deadline,
        )
    if settings.gemini_api_key is not None:
        providers["gemini"] = GeminiProvider(
            api_key=settings.gemini_api_key.get_secret_value(),
            base_url=settings.gemini_api_url,
            client=client,
            deadline=settings.provider_deadline,
        )
    for name in settings.configured_providers():
        if name not in providers:
            known = {
                "runware": "RUNWARE_API_KEY",
                "runflow": "RUNFLOW_API_KEY",
                "runbase": "RUNBASE_API_KEY",
                "gemini": "GEMINI_API_KEY",
            }
            hint = f" (set {known[name]})" if name in known else ""
            raise ConfigurationError(
                f"BANANABOT_PROVIDERS names {name!r}, which is not available{hint}"
            )
    return providers


def build_callbacks(settings: Settings, providers: Mapping[str, Provider]) -> dict[str, Callback]:
    """What takes provider callbacks: Runflow's, where runs carry a ``callback_url`` (a
    public URL is set)."""
    runflow = providers.get("runflow")
    if settings.public_url is None or not isinstance(runflow, RunflowProvider):
        return {}
    secret = settings.runflow_callback_secret
    receiver = CallbackReceiver(
        runflow.notify, None if secret is None else secret.get_secret_value()
    )
    return {"runflow": receiver.receive}


def assemble_core(
    *,
    catalog: Catalog,
    store: Store,
    media: FileMediaStore,
    providers: Mapping[str, Provider],
    routing: Sequence[str],
    reference_client: httpx.AsyncClient,
    default_policy: ChannelPolicy,
    concurrency: int,
    idle_poll: float = 1.0,
    position_interval: float = 1.0,
    links: ReferenceLinks | None = None,
    telemetry: Telemetry | None = None,
    lease: float | None = None,
) -> tuple[ImageService, Worker, DeliveryRouter]:
    """Wire the service, the worker and the delivery router around a store and providers.

    Args:
        routing: provider names tried in order for requests that name none.
        reference_client: fetches reference links people give (use
            :func:`bot.media.guard.guarded_client`: public addresses only).
        concurrency: jobs at once per provider.
        idle_poll: seconds between claims when idle (jobs from other processes).
        position_interval: seconds between queue-position updates.
        links: makes reference links for link-only providers (``BANANABOT_PUBLIC_URL``).
        telemetry: told provider-call timings (metrics).
        lease: seconds before another process takes over a running job nobody touches;
            None where one process owns the store (SQLite).
    """
    router = DeliveryRouter(outbox=store)
    health = ProviderHealth(providers)
    worker = Worker(
        catalog=catalog,
        jobs=store,
        reader=store,
        ledger=store,
        media=media,
        providers=providers,
        delivery=router,
        concurrency={name: concurrency for name in providers},
        idle_poll=idle_poll,
        position_interval=position_interval,
        health=health,
        links=links,
        telemetry=telemetry,
        lease=lease,
    )
    service = ImageService(
        catalog=catalog,
        jobs=store,
        reader=store,
        ledger=store,
        policies=store,
        media=media,
        providers={name: p.capabilities for name, p in providers.items()},
        routing=routing,
        references=MediaReferenceLoader(client=reference_client, media=media),
        delivery=router,
        default_policy=default_policy,
        wake=worker.wake,
        health=health,
        reference_links=links is not None,
    )
    worker.failover = service.reroute
    return service, worker, router


@asynccontextmanager
async def build_app(settings: Settings, *, exclusive: bool = True) -> AsyncIterator[App]:
    """Build the store, HTTP client, media store, providers, service and worker.

    Everything is closed in reverse order when the context exits.

    Args:
        exclusive: SQLite: hold the one-process lock (processes that run workers); False
            for short admin commands (``budget``, ``policy``, ``doctor``) beside a running
            bot, which only read and write in transactions.

    Raises:
        ConfigurationError: for settings that cannot work.
    """
    async with AsyncExitStack() as stack:
        catalog = build_catalog(settings)
        store = await stack.enter_async_context(
            store_from_url(settings.database_url, exclusive=exclusive)
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=httpx.Timeout(settings.http_timeout, connect=10.0),
                follow_redirects=False,
                headers={"User-Agent": "bananabot/0.1"},
            )
        )
        reference_client = await stack.enter_async_context(
            guarded_client(timeout=settings.http_timeout)
        )
        media = FileMediaStore(settings.data_dir / "media")
        links = build_links(settings)
        metrics = Metrics(store)
        providers = build_providers(settings, client)
        service, worker, router = assemble_core(
            catalog=catalog,
            store=store,
            media=media,
            providers=providers,
            routing=settings.configured_providers(),
            reference_client=reference_client,
            default_policy=ChannelPolicy(
                max_tolerance=settings.safety_max_default,
                force_check_content=settings.force_check_content,
            ),
            concurrency=settings.concurrency,
            links=links,
            telemetry=metrics,
            # SQLite's file lock keeps other processes out: every running job found at
            # start is this process's to recover. PostgreSQL: other processes may be alive.
            lease=None if isinstance(store, SqliteStore) else settings.worker_lease,
        )
        yield App(
            settings, catalog, store, media, providers, router, service, worker, metrics, links,
            build_callbacks(settings, providers),
        )  # fmt: skip


async def run(settings: Settings, *, adapters: bool = True) -> None:
    """``bananabot run``: workers, the operations server and every chat adapter with
    credentials, else the playground.

    The operations server (``/healthz``, ``/metrics``, ``/media/<token>``) always listens on
    ``BANANABOT_WEB_HOST:BANANABOT_WEB_PORT``; where the playground runs, it serves those
    routes too. With ``DISCORD_TOKEN`` the Discord adapter runs and the playground does not:
    the playground has no login and spends outside every Discord budget, so it only starts
    where no chat adapter runs (a local try-out). Runs until SIGINT or SIGTERM (``docker
    stop``), then shuts down cleanly: workers stop claiming, running jobs get
    ``BANANABOT_SHUTDOWN_GRACE`` seconds to finish and be delivered, and those still running
    keep their provider task ids and are resumed at the next start (or by another process).

    Args:
        adapters: False runs workers and the operations server only (``bananabot worker``),
            so adapters and workers scale apart on one PostgreSQL database.

    Raises:
        ConfigurationError: an adapter cannot start with these settings (e.g. Discord
            refused the token).
    """
    from adapters.web.server import WebPlayground  # adapters are loaded by name, late

    stop = asyncio.Event()
    hurry = asyncio.Event()  # a second signal: stop without waiting for running jobs

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        async with build_app(settings) as app, asyncio.TaskGroup() as group:
            worker = group.create_task(app.worker.run(), name="worker")
            tasks = [worker]

            async def store_answers() -> None:
                await app.store.jobs_in_status("running", 1)

            async def worker_runs() -> None:
                if worker.done():
                    raise RuntimeError("the workers stopped")

            ops = OpsServer(
                metrics=app.metrics,
                checks={"store": store_answers, "workers": worker_runs},
                media=app.media,
                links=app.links,
                callbacks=app.callbacks,
                host=settings.web_host,
                port=settings.web_port,
            )
            chat = 0
            if adapters and settings.discord_token is not None:
                from adapters.discord import DiscordAdapter

                discord_adapter = DiscordAdapter.from_settings(
                    settings,
                    service=app.service,
                    media=app.media,
                    on_ack=lambda seconds: app.metrics.ack("discord", seconds),
                )
                app.router.register(discord_adapter.platform, discord_adapter)
                tasks.append(group.create_task(discord_adapter.serve(), name="discord"))
                chat += 1
            if adapters and settings.slack_bot_token is not None:
                from adapters.slack import SlackAdapter

                slack_adapter = SlackAdapter.from_settings(
                    settings,
                    service=app.service,
                    media=app.media,
                    on_ack=lambda seconds: app.metrics.ack("slack", seconds),
                )
                app.router.register(slack_adapter.platform, slack_adapter)
                tasks.append(group.create_task(slack_adapter.serve(), name="slack"))
                chat += 1
            if adapters:
                # Results of jobs other processes ran, or that finished while an adapter
                # was down, reach their people from here.
                pump = DeliveryPump(
                    router=app.router, outbox=app.store, reader=app.store, ledger=app.store
                )
                tasks.append(group.create_task(pump.run(), name="delivery"))
            if adapters and not chat:
                playground = WebPlayground(
                    service=app.service,
                    media=app.media,
                    host=settings.web_host,
                    port=settings.web_port,
                    extra_routes=ops.routes(),
                )
                app.router.register(playground.platform, playground)
                tasks.append(group.create_task(playground.serve(), name="web"))
            else:
                tasks.append(group.create_task(ops.serve(), name="ops"))
            await stop.wait()
            log.info(
                "shutting down: running jobs have %s s to finish (signal again to stop now)",
                settings.shutdown_grace,
            )
            # Jobs that finish in the grace are delivered by adapters still connected;
            # the rest keep their task ids and are resumed at the next start (or, on
            # PostgreSQL, by another process once their lease runs out).
            draining = asyncio.ensure_future(app.worker.drain())
            hurried = asyncio.ensure_future(hurry.wait())
            await asyncio.wait(
                (draining, hurried),
                timeout=settings.shutdown_grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in (draining, hurried):
                waiter.cancel()
            log.info("closing adapters, workers and servers")
            for task in tasks:
                task.cancel()
    except* ConfigurationError as failed:
        raise failed.exceptions[0] from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
