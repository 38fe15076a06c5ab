"""SQLite serves one process: a second opener of the same file is refused, clearly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigurationError
from bot.storage import SqliteStore

ROOT = Path(__file__).resolve().parents[1]

_HOLDER = r"""
import asyncio, sys
from bot.storage import SqliteStore

async def main() -> None:
    async with SqliteStore(sys.argv[1]):
        sys.stdout.write("open\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
"""

_OPENER = r"""
import asyncio, sys
from bot.errors import ConfigurationError
from bot.storage import SqliteStore

async def main() -> int:
    try:
        async with SqliteStore(sys.argv[1]):
            print("opened")
            return 0
    except ConfigurationError as exc:
        print(exc.message)
        return 3

sys.exit(asyncio.run(main()))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


async def _python(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )


async def _start_holder(path: Path) -> asyncio.subprocess.Process:
    """A separate Python process that opens the store and keeps it open until told."""
    holder = await _python(_HOLDER, str(path))
    assert holder.stdout is not None
    line = await asyncio.wait_for(holder.stdout.readline(), 60)
    if line != b"open\n":
        _, err = await holder.communicate()
        raise AssertionError(f"the holder did not open the store: {line!r} {err.decode()}")
    return holder


async def test_a_second_store_on_the_same_file_in_this_process_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bananabot.db"
    async with SqliteStore(path) as first:
        second = SqliteStore(path)
        with pytest.raises(ConfigurationError) as caught:
            await second.open()
        message = caught.value.message
        assert str(path.resolve()) in message
        assert "another bananabot process is already using" in message
        assert "DATABASE_URL=postgresql://" in message
        await second.close()  # nothing was left open; closing is harmless
        # The first store is unaffected, and another file is another matter.
        assert await first.ledger_totals() == {}
        async with SqliteStore(tmp_path / "other.db") as other:
            assert await other.ledger_totals() == {}
    # Closed: the file is free again.
    async with SqliteStore(path) as again:
        assert await again.jobs_in_status("queued", 1) == []


async def test_a_non_exclusive_store_opens_beside_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "bananabot.db"
    async with SqliteStore(path) as holder, SqliteStore(path, exclusive=False) as tool:
        assert await tool.list_caps("ws") == await holder.list_caps("ws") == []
        with pytest.raises(ConfigurationError):
            await SqliteStore(path).open()


async def test_another_process_holding_the_file_refuses_this_one_until_it_exits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    holder = await _start_holder(path)
    try:
        with pytest.raises(ConfigurationError, match="another bananabot process"):
            await SqliteStore(path).open()
    finally:
        _, err = await asyncio.wait_for(holder.communicate(b"done\n"), 60)
    assert holder.returncode == 0, err.decode()
    async with SqliteStore(path) as store:
        assert await store.ledger_totals() == {}


async def test_this_process_holding_the_file_refuses_another_process(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SqliteStore(path):
        opener = await _python(_OPENER, str(path))
        out, err = await asyncio.wait_for(opener.communicate(), 60)
    assert opener.returncode == 3, err.decode()
    assert out.decode().strip() == (
        f"another bananabot process is already using {path.resolve()}; SQLite serves one "
        "process at a time: stop the other process, or use PostgreSQL "
        "(DATABASE_URL=postgresql://...) to run several"
    )
    # Once this process has closed it, the other process opens it.
    opener = await _python(_OPENER, str(path))
    out, err = await asyncio.wait_for(opener.communicate(), 60)
    assert (opener.returncode, out.decode().strip()) == (0, "opened"), err.decode()


async def test_a_killed_process_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    holder = await _start_holder(path)
    holder.send_signal(signal.SIGKILL)
    await asyncio.wait_for(holder.communicate(), 60)
    assert holder.returncode == -signal.SIGKILL
    assert (tmp_path / "shared.db.lock").exists()  # the file stays; its lock died with it
    async with SqliteStore(path) as store:
        assert await store.ledger_totals() == {}
