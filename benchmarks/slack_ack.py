"""Slack acknowledgement latency: concurrent signed ``/imagine`` requests in HTTP mode while
the workers are busy.

Run: ``.venv/bin/python benchmarks/slack_ack.py [--requests 200] [--busy 40] [--delay 2.0]``.

Two processes on loopback, like production where Slack is another machine:

* **the bot**: the real core (``build_app``: SQLite in a temp folder, file media store,
  worker, sandbox provider taking ``--delay`` seconds per job, 4 jobs at once) and the Slack
  adapter in HTTP mode (slack-bolt ``AsyncApp`` behind aiohttp, signature check included);
* **Slack**: the local fake (``tests/fakes/slack.py``), which answers the Web API calls that
  follow each ack (status messages, ``chat.update``, uploads), and the load generator.

First ``--busy`` commands are sent and their jobs queued, so the workers are generating and
the adapter is posting progress; then ``--requests`` signed ``/imagine`` requests are sent at
once (one connection each), and the time from sending each request to its HTTP 200 is
measured. The follow-up work of all of them (budget check, status message, submit) runs in
the bot while later acks are still being answered.

Prints a Markdown table row with the date and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.slack import SlackAdapter
from bot.app import build_app
from bot.settings import Settings
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_rules import sign

_READY = "SLACK-ADAPTER-PORT"


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- the bot process -------------------------------------------------------------------------


async def serve_bot(api_url: str, token: str, secret: str, delay: float) -> None:
    """Run the core and the Slack adapter until SIGTERM; print the port when listening."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp}/bench.db",
            data_dir=Path(tmp) / "data",
            sandbox_delay=delay,
            concurrency=4,
            providers=[],
        )
        async with build_app(settings) as app:
            adapter = SlackAdapter(
                service=app.service,
                media=app.media,
                bot_token=token,
                signing_secret=secret,
                api_url=api_url,
                port=0,
            )
            app.router.register(adapter.platform, adapter)
            tasks = [asyncio.create_task(app.worker.run()), asyncio.create_task(adapter.serve())]
            await adapter.started.wait()
            print(f"{_READY} {adapter.bound_port}", flush=True)
            await stop.wait()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


# --- the fake Slack process ------------------------------------------------------------------


async def serve_slack() -> None:
    """Run the fake Slack until SIGTERM; print its API URL, bot token and signing secret."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeSlack() as fake:
        print(f"{_READY} {fake.api_url} {fake.bot_token} {fake.signing_secret}", flush=True)
        await stop.wait()


# --- the load generator (this process) -------------------------------------------------------


def _command(api_url: str, secret: str, user: str, text: str) -> tuple[bytes, dict[str, str]]:
    """A signed ``/imagine`` as Slack sends it (form body, ``X-Slack-Signature``)."""
    body = urlencode(
        {
            "token": "bench",
            "team_id": "T0FAKE001",
            "channel_id": "C0GENERAL",
            "user_id": user,
            "command": "/imagine",
            "text": text,
            "response_url": f"{api_url.removesuffix('/api/')}/response/unused",
            "trigger_id": f"{time.time_ns()}.{secrets.token_hex(16)}",
        }
    ).encode()
    timestamp = int(time.time())
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(secret, timestamp, body),
    }


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _exchange(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    request: tuple[bytes, dict[str, str]],
) -> tuple[int, float]:
    """Send one request on an open connection; (status, seconds from the write to the
    last byte of the response). Connections are opened beforehand, so only the request
    is timed."""
    reader, writer = connection
    body, headers = request
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(
        f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
        + body
    )
    start = time.perf_counter()
    head_bytes = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head_bytes.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    await reader.readexactly(length)
    elapsed = time.perf_counter() - start
    writer.close()
    return int(head_bytes.split(b" ", 2)[1]), elapsed


async def _spawn(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while not (line := (await process.stdout.readline()).decode()).startswith(_READY):
            if not line:
                raise SystemExit(f"{args[0]} ended before it was ready")
    return process, line.split()[1:]


async def run(requests: int, busy: int, delay: float) -> dict[str, float]:
    processes = []
    try:
        slack, (api_url, token, secret) = await _spawn("--serve-slack")
        processes.append(slack)
        bot, (port,) = await _spawn("--serve-bot", api_url, token, secret, str(delay))
        processes.append(bot)
        users = [f"U0BENCH{i:03d}" for i in range(50)]
        warm = [
            _command(api_url, secret, users[i % 50], f"warm-up picture {i}") for i in range(busy)
        ]
        connections = [await _connect(int(port)) for _ in warm]
        await asyncio.gather(*(_exchange(c, r) for c, r in zip(connections, warm, strict=True)))
        await asyncio.sleep(1.5)  # warm-up jobs queued and generating
        burst = [
            _command(api_url, secret, users[i % 50], f"a burst picture {i}")
            for i in range(requests)
        ]
        connections = [await _connect(int(port)) for _ in burst]
        results = await asyncio.gather(
            *(_exchange(c, r) for c, r in zip(connections, burst, strict=True))
        )
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
            await process.wait()
    statuses = {status for status, _ in results}
    if statuses != {200}:
        raise SystemExit(f"unexpected statuses: {statuses}")
    latencies = [seconds * 1000 for _, seconds in results]
    return {
        "p50": statistics.median(latencies),
        "p99": _percentile(latencies, 0.99),
        "max": max(latencies),
    }


def main() -> None:
    if sys.argv[1:] == ["--serve-slack"]:
        asyncio.run(serve_slack())
        return
    if len(sys.argv) == 6 and sys.argv[1] == "--serve-bot":
        api_url, token, secret, delay = sys.argv[2:]
        asyncio.run(serve_bot(api_url, token, secret, float(delay)))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--busy", type=int, default=40, help="jobs queued before the burst")
    parser.add_argument("--delay", type=float, default=2.0, help="sandbox seconds per job")
    args = parser.parse_args()
    numbers = asyncio.run(run(args.requests, args.busy, args.delay))
    machine = f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}"
    print("| date | machine | measurement | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {date.today().isoformat()} | {machine} | Slack HTTP ack, {args.requests} "
        f"concurrent signed `/imagine`, {args.busy} jobs in the workers | "
        f"{numbers['p50']:.1f} ms | {numbers['p99']:.1f} ms | {numbers['max']:.1f} ms |"
    )


if __name__ == "__main__":
    main()
