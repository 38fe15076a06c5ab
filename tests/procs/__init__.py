"""bananabot as child processes, for tests that need real processes (kill -9, several
instances, the ``worker`` command)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUR_PREFIXES = ("BANANABOT_", "DISCORD_", "SLACK_", "RUNWARE_", "RUNFLOW_", "RUNBASE_", "GEMINI_")


def bot_env(tmp_path: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The parent's environment without any bananabot setting or credential, plus a data
    folder under ``tmp_path``, ``DATABASE_URL``, a free web port and ``settings``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(OUR_PREFIXES) and name != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        BANANABOT_WEB_PORT="0",
        BANANABOT_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


class WorkerProcess:
    """``bananabot worker`` as a child process; :attr:`url` is its operations server, read
    from the line it prints on stderr. Stop it with :meth:`stop` (SIGINT, then kill)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            found = re.search(r"operations on (http://\S+/)", line)
            if found and not self.url:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 30) -> str:
        """The operations URL, once the worker listens."""
        self._ready.wait(timeout)
        assert self.url, "bananabot worker did not start:\n" + "".join(self.lines)
        return self.url

    def stop(self) -> int:
        """SIGINT, wait up to 20 s (then kill); the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return self.process.returncode
