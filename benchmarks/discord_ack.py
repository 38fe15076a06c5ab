"""Acknowledgement latency of ``/imagine`` through the fake Discord while workers are busy.

Run: ``.venv/bin/python benchmarks/discord_ack.py [--interactions 200] [--busy 40]
[--in-process]``.

The bot runs as in production: the real core (SQLite in a temp folder, the sandbox provider
with a delay, the worker), the Discord adapter, and discord.py connected to the local fake
Discord (``tests/fakes/discord.py``) over loopback REST and a zlib-compressed gateway
websocket. The fake runs in a child process by default, as Discord is another machine; with
``--in-process`` it shares the bot's event loop (and CPU), which roughly doubles the work
on one core.

First ``--busy`` jobs fill the workers and the queue (so progress edits and queue positions
flow during the measurement), then ``--interactions`` ``/imagine`` interactions are pushed
through the gateway at once. The fake records, per interaction, the time from
INTERACTION_CREATE sent to the callback received (the ack Discord would see; its limit is
3 s). Prints a Markdown table row with the date and the machine: p50, p99 and max in
milliseconds, and how many acks missed 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

from adapters.discord import DiscordAdapter
from bot.app import build_app
from bot.settings import Settings
from tests.fakes.discord import FakeDiscord


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- the fake's side: send interactions, read the recorded ack latencies -------------------


async def fire(fake: FakeDiscord, count: int, label: str) -> list[float]:
    """Send ``count`` ``/imagine`` interactions at once; their ack latencies in seconds."""
    users = [fake.member, fake.admin, fake.owner]
    payloads = [
        fake.slash_command("imagine", {"prompt": f"{label} banana {i}"}, user=users[i % 3])
        for i in range(count)
    ]
    ids = [int(p["id"]) for p in payloads]

    def acked(iid: int) -> float | None:
        accepted = [c for c in fake.interactions[iid].callbacks if c.accepted]
        return accepted[0].latency if accepted else None

    await asyncio.gather(*(fake.send_interaction(p) for p in payloads))
    # One waiter for all (200 waiters woken by every request the fake records would make the
    # fake itself the bottleneck).
    await fake.wait_until(lambda: all(acked(i) is not None for i in ids), 120, "every ack")
    return [acked(i) or float("inf") for i in ids]


async def serve_fake() -> None:
    """Child process: run the fake; print its address; obey ``busy N`` / ``fire N`` / ``quit``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with FakeDiscord() as fake:
        print(
            json.dumps(
                {
                    "api": fake.api_url,
                    "gateway": fake.gateway_url,
                    "token": fake.token,
                    "guild": fake.guild.id,
                }
            ),
            flush=True,
        )
        while line := (await reader.readline()).decode().split():
            command, count = line[0], int(line[1]) if len(line) > 1 else 0
            if command == "quit":
                break
            await fake.wait_ready(timeout=30)
            latencies = await fire(fake, count, command)
            print(json.dumps(latencies), flush=True)


# --- the bot's side -------------------------------------------------------------------------


async def run_bot(address: dict[str, Any], folder: str, delay: float, concurrency: int) -> Any:
    """An async context running the bot against the fake at ``address``."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{folder}/bench.db",
        data_dir=Path(folder) / "data",
        sandbox_delay=delay,
        concurrency=concurrency,
        runware_api_key=None,
        providers=[],
        discord_token=address["token"],
        discord_api_url=address["api"],
        discord_gateway_url=address["gateway"],
        discord_guild_ids=[address["guild"]],
    )
    import discord

    @contextlib.asynccontextmanager
    async def running() -> Any:
        async with build_app(settings) as app:
            adapter = DiscordAdapter.from_settings(
                settings,
                service=app.service,
                media=app.media,
                guild_ready_timeout=0.1,
            )
            app.router.register(adapter.platform, adapter)
            tasks = [asyncio.create_task(adapter.serve()), asyncio.create_task(app.worker.run())]
            try:
                async with asyncio.timeout(30):
                    await adapter.client.connected.wait()
                guild = discord.Object(id=address["guild"])
                adapter.client.tree.copy_global_to(guild=guild)
                await adapter.client.tree.sync(guild=guild)
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    return running()


@contextlib.asynccontextmanager
async def floor_client(address: dict[str, Any]) -> AsyncIterator[None]:
    """The least a bot can do: a bare gateway client that acks every interaction at once.

    It measures the fake's own share of the latency (the floor under any bot's numbers).
    """
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        ws = await http.ws_connect(f"{address['gateway']}?v=10&encoding=json")
        await ws.receive_json()  # HELLO
        await ws.send_json(
            {"op": 2, "d": {"token": address["token"], "intents": 1, "properties": {}}}
        )
        pending: set[asyncio.Task[None]] = set()

        async def ack(interaction: dict[str, Any]) -> None:
            url = (
                f"{address['api']}/interactions/{interaction['id']}/"
                f"{interaction['token']}/callback?with_response=1"
            )
            async with http.post(url, json={"type": 5}) as response:
                await response.read()

        async def read() -> None:
            async for message in ws:
                frame = json.loads(message.data)
                if frame.get("t") == "INTERACTION_CREATE":
                    task = asyncio.create_task(ack(frame["d"]))
                    pending.add(task)
                    task.add_done_callback(pending.discard)

        reader = asyncio.create_task(read())
        try:
            yield
        finally:
            reader.cancel()
            await ws.close()


async def measure_in_process(args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        async with FakeDiscord() as fake:
            address = {
                "api": fake.api_url,
                "gateway": fake.gateway_url,
                "token": fake.token,
                "guild": fake.guild.id,
            }
            async with await run_bot(address, folder, args.delay, args.concurrency):
                await fire(fake, args.busy, "busy")
                await asyncio.sleep(0.5)
                return await fire(fake, args.interactions, "measured")


async def measure_two_processes(args: argparse.Namespace) -> list[float]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-fake",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None

    async def ask(line: str) -> Any:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{line}\n".encode())
        await child.stdin.drain()
        return json.loads(await child.stdout.readline())

    try:
        address = json.loads(await child.stdout.readline())
        with tempfile.TemporaryDirectory() as folder:
            bot = (
                floor_client(address)
                if args.floor
                else await run_bot(address, folder, args.delay, args.concurrency)
            )
            async with bot:
                await ask(f"busy {args.busy}")
                await asyncio.sleep(0.5)
                latencies: list[float] = await ask(f"measured {args.interactions}")
                return latencies
    finally:
        child.stdin.write(b"quit\n")
        await child.stdin.drain()
        await asyncio.wait_for(child.wait(), timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=200)
    parser.add_argument("--busy", type=int, default=40, help="jobs queued before measuring")
    parser.add_argument("--delay", type=float, default=2.0, help="sandbox seconds per job")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs at once")
    parser.add_argument("--in-process", action="store_true", help="fake on the bot's loop")
    parser.add_argument(
        "--floor", action="store_true", help="a bare client that only acks (the fake's share)"
    )
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake())
        return
    measure = measure_in_process if args.in_process else measure_two_processes
    latencies = asyncio.run(measure(args))
    ms = [value * 1000 for value in latencies]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    where = "same process" if args.in_process else "own process"
    if args.floor:
        where += ", bare ack client (floor)"
    print("| date | machine | fake | interactions | busy jobs | p50 ms | p99 ms | max ms | > 3 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {date.today().isoformat()} | {machine} | {where} | {len(ms)} | "
        f"{'–' if args.floor else args.busy} | "
        f"{statistics.median(ms):.1f} | {_percentile(ms, 0.99):.1f} | {max(ms):.1f} | "
        f"{sum(1 for value in latencies if value >= 3.0)} |"
    )


if __name__ == "__main__":
    main()
