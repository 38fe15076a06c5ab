"""Operations: ``/healthz`` and Prometheus ``/metrics``, in process and from ``bananabot
worker``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import assemble_core
from bot.catalog import default_catalog
from bot.errors import ProviderRejected
from bot.media.store import FileMediaStore
from bot.models import ImageRequest
from bot.ops.metrics import Metrics
from bot.ops.server import OpsServer
from bot.policy import ChannelPolicy
from bot.storage import SqliteStore
from tests.conftest import Core, Recorder, origin
from tests.fakes.provider import ScriptedProvider
from tests.procs import WorkerProcess, bot_env


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@dataclass
class Ops:
    """A core whose worker reports to ``metrics``, and the operations server over it."""

    core: Core
    metrics: Metrics
    server: OpsServer
    http: httpx.AsyncClient
    broken: asyncio.Event  # set: the "workers" health check fails


@pytest.fixture
async def ops(tmp_path: Path, scripted: ScriptedProvider) -> AsyncIterator[Ops]:
    async with SqliteStore(tmp_path / "ops.db") as store, httpx.AsyncClient() as client:
        media = FileMediaStore(tmp_path / "media")
        metrics = Metrics(store)
        service, worker, router = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=media,
            providers={"scripted": scripted},
            routing=["scripted"],
            reference_client=client,
            default_policy=ChannelPolicy(max_tolerance="off"),
            concurrency=2,
            idle_poll=0.05,
            position_interval=0.01,
            telemetry=metrics,
        )
        recorder = Recorder()
        router.register("test", recorder)
        core = Core(
            default_catalog(), store, media, service, worker, recorder,
            {"scripted": scripted}, router,
        )  # fmt: skip
        broken = asyncio.Event()

        async def store_answers() -> None:
            await store.jobs_in_status("running", 1)

        async def maybe_broken() -> None:
            if broken.is_set():
                raise RuntimeError("the workers stopped")

        server = OpsServer(
            metrics=metrics,
            checks={"store": store_answers, "workers": maybe_broken},
            media=media,
            links=None,
            host="127.0.0.1",
            port=0,
        )
        serving = asyncio.create_task(server.serve())
        await server.started.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.bound_port}") as http:
            try:
                yield Ops(core, metrics, server, http, broken)
            finally:
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving


async def test_healthz_answers_503_naming_the_failing_check(ops: Ops) -> None:
    http = ops.http
    healthy = await http.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok", "checks": {"store": "ok", "workers": "ok"}}
    ops.broken.set()
    failing = await http.get("/healthz")
    assert failing.status_code == 503
    assert failing.json()["checks"]["workers"] == "failing (RuntimeError)"
    assert (await http.get("/media/" + "a" * 40)).status_code == 404  # no public URL


async def test_metrics_report_jobs_queue_spend_and_latency(
    scripted: ScriptedProvider, ops: Ops
) -> None:
    core, metrics, http = ops.core, ops.metrics, ops.http
    scripted.outcome = lambda task: (
        ProviderRejected("scripted", "no", 400) if "fail" in task.request.prompt else None
    )
    for index, prompt in enumerate(["a red barn", "a blue barn", "please fail now"]):
        await core.service.submit(ImageRequest(prompt=prompt), origin(), idempotency_key=str(index))
    before = samples((await http.get("/metrics")).text)
    assert before[("bananabot_queue_depth", (("provider", "scripted"),))] == 3
    assert before[("bananabot_jobs", (("provider", "scripted"), ("status", "queued")))] == 3

    worker = asyncio.create_task(core.worker.run())
    try:
        async with asyncio.timeout(20):
            while sum(u.kind in ("done", "failed") for u in core.recorder.updates) < 3:
                await asyncio.sleep(0.02)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    page = await http.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    after = samples(page.text)
    jobs = {labels: value for (name, labels), value in after.items() if name == "bananabot_jobs"}
    assert jobs == {
        (("provider", "scripted"), ("status", "succeeded")): 2,
        (("provider", "scripted"), ("status", "failed")): 1,
    }
    assert ("bananabot_queue_depth", (("provider", "scripted"),)) not in after
    # ScriptedProvider reports $0.05 per image.
    assert after[("bananabot_spend_dollars", (("provider", "scripted"),))] == pytest.approx(0.10)
    assert after[("bananabot_ledger_dollars", (("kind", "charge"),))] == pytest.approx(0.10)
    ok = (("outcome", "succeeded"), ("provider", "scripted"))
    rejected = (("outcome", "provider_rejected"), ("provider", "scripted"))
    assert after[("bananabot_provider_call_seconds_count", ok)] == 2
    assert after[("bananabot_provider_call_seconds_count", rejected)] == 1
    metrics.ack("discord", 0.042)
    acked = samples((await http.get("/metrics")).text)
    assert acked[("bananabot_ack_seconds_count", (("platform", "discord"),))] == 1
    assert acked[("bananabot_ack_seconds_sum", (("platform", "discord"),))] == pytest.approx(0.042)


def test_bananabot_worker_serves_health_and_metrics_without_adapters(tmp_path: Path) -> None:
    """``bananabot worker`` starts workers and the operations server, no playground."""
    worker = WorkerProcess(bot_env(tmp_path, f"sqlite:///{tmp_path}/w.db"), tmp_path)
    try:
        url = worker.wait_ready()
        health = httpx.get(url + "healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        page = httpx.get(url + "metrics", timeout=5)
        assert page.status_code == 200 and "bananabot_ack_seconds" in page.text
        # No playground here: its page and API are not served.
        assert httpx.get(url, timeout=5).status_code == 404
        assert httpx.get(url + "api/config", timeout=5).status_code == 404
    finally:
        code = worker.stop()
    assert code == 0, "".join(worker.lines)
    assert "playground" not in "".join(worker.lines)
