"""Runflow callbacks: with ``BANANABOT_PUBLIC_URL`` each run carries a ``callback_url``, and
a signed callback makes bananabot fetch the result at once instead of at the next poll.

Source: seeds/002_* ("Callback payload") and provider-apis.md §2.5 (``Runflow-Signature``
is hex HMAC-SHA256 of the raw body). The emulator signs with its own code, written from the
docs. The polls here are an hour apart, so a job that ends at all was ended by its callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.app import App, build_app
from bot.models import ImageRequest, JobStatus
from bot.ops.server import OpsServer
from bot.providers.runflow import CallbackReceiver
from bot.settings import Settings
from tests.conftest import Recorder, origin
from tests.fakes.runflow import SAFETY_BLOCK_MARKER, RunflowEmulator

SECRET = "whsec_callback-test-secret"
HOUR = 3600.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Bot:
    app: App
    emulator: RunflowEmulator
    recorder: Recorder
    public_url: str


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    async with RunflowEmulator(api_key="rf-key", callback_secret=SECRET) as emulator:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            BANANABOT_DATA_DIR=tmp_path,
            DATABASE_URL=f"sqlite:///{tmp_path}/bot.db",
            RUNFLOW_API_KEY="rf-key",
            RUNFLOW_API_URL=emulator.base_url,
            RUNFLOW_CALLBACK_SECRET=SECRET,
            BANANABOT_PROVIDERS="runflow",
            BANANABOT_PUBLIC_URL=public_url,
            BANANABOT_POLL_INITIAL=HOUR,
            BANANABOT_POLL_MAX=HOUR,
        )
        async with build_app(settings) as app:
            recorder = Recorder()
            app.router.register("test", recorder)
            server = OpsServer(
                metrics=app.metrics, checks={}, media=app.media, links=app.links,
                callbacks=app.callbacks, host="127.0.0.1", port=port,
            )  # fmt: skip
            tasks = [asyncio.create_task(server.serve()), asyncio.create_task(app.worker.run())]
            await server.started.wait()
            try:
                yield Bot(app, emulator, recorder, public_url)
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


async def submitted_run(bot: Bot, prompt: str = "a lighthouse at dusk") -> tuple[str, str]:
    """Submit a job; return (job id, Runflow run id) once the run exists."""
    accepted = await bot.app.service.submit(
        ImageRequest(prompt=prompt), origin(), idempotency_key="k-" + prompt
    )
    async with asyncio.timeout(20):
        while not bot.emulator.runs:
            await asyncio.sleep(0.01)
    (run_id,) = bot.emulator.runs
    return accepted.job.id, run_id


async def test_a_signed_callback_ends_the_job_without_waiting_for_a_poll(bot: Bot) -> None:
    job_id, run_id = await submitted_run(bot)
    body = bot.emulator.runs[run_id]
    assert body["callback_url"] == bot.public_url + "/callbacks/runflow"
    assert await bot.emulator.complete(run_id) == 200
    done = await bot.recorder.wait_for(job_id, "done")
    assert done.job.status is JobStatus.SUCCEEDED
    assert bot.emulator.polls.get(run_id) == 1, "one poll, made when the callback came"


async def test_a_forged_callback_is_refused_and_changes_nothing(bot: Bot) -> None:
    job_id, run_id = await submitted_run(bot)
    envelope = json.dumps({"event": "run.completed", "run_id": run_id, "status": "succeeded"})
    async with httpx.AsyncClient(base_url=bot.public_url) as http:
        unsigned = await http.post("/callbacks/runflow", content=envelope)
        forged = await http.post(
            "/callbacks/runflow", content=envelope, headers={"Runflow-Signature": "ab" * 32}
        )
        unknown = await http.post("/callbacks/runbase", content=envelope)
    assert (unsigned.status_code, forged.status_code, unknown.status_code) == (401, 401, 404)
    await asyncio.sleep(0.3)
    assert bot.emulator.polls.get(run_id, 0) == 0, "a refused callback made a poll"
    assert (await bot.app.store.get_job(job_id)).status is JobStatus.RUNNING
    # The real one still works afterwards.
    assert await bot.emulator.complete(run_id) == 200
    await bot.recorder.wait_for(job_id, "done")


async def test_a_blocked_run_called_back_is_refunded(bot: Bot) -> None:
    job_id, run_id = await submitted_run(bot, f"a lighthouse {SAFETY_BLOCK_MARKER}")
    assert await bot.emulator.complete(run_id) == 200
    failed = await bot.recorder.wait_for(job_id, "failed")
    assert failed.job.status is JobStatus.FAILED and failed.job.cost_micros == 0


def test_the_receiver_checks_signatures_and_envelopes() -> None:
    told: list[str] = []

    def notify(run_id: str) -> bool:
        told.append(run_id)
        return True

    signed = CallbackReceiver(notify, "whsec_x")
    raw = b'{"event":"run.completed","run_id":"r1","status":"succeeded"}'
    assert signed.receive(raw, {"Runflow-Signature": "ab" * 32}) == 401
    assert signed.receive(raw, {}) == 401
    real = hmac.new(b"whsec_x", raw, hashlib.sha256).hexdigest()
    assert signed.receive(raw + b" ", {"Runflow-Signature": real}) == 401
    assert told == []
    assert signed.receive(raw, {"Runflow-Signature": real}) == 200
    assert told == ["r1"]
    unsigned = CallbackReceiver(notify, None)
    assert unsigned.receive(b"[" * 100_000, {}) == 400
    assert unsigned.receive(b"\xff\xfe", {}) == 400
    assert unsigned.receive(b'{"event": "run.completed", "status": "succeeded"}', {}) == 400
    assert unsigned.receive(b'{"event": "e", "status": "s", "run_id": 7}', {}) == 400
    assert unsigned.receive(b'{"event": "e", "status": "s", "run_id": ""}', {}) == 400
    assert (
        unsigned.receive(b'{"event": "run.failed", "status": "failed", "run_id": "r2"}', {}) == 200
    )
    assert told == ["r1", "r2"]
