"""End to end: ``bananabot run`` in a subprocess, the playground page driven in Chromium."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
PROVIDER_KEYS = (
    "RUNWARE_API_KEY",
    "RUNFLOW_API_KEY",
    "RUNBASE_API_KEY",
    "GEMINI_API_KEY",
    "DISCORD_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
)
LISTENING = re.compile(r"playground on (http://\S+/)")

pytestmark = [
    pytest.mark.timeout(60),
    # CI sets BANANABOT_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping.
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("BANANABOT_REQUIRE_BROWSER") != "1",
        reason="needs Debian's chromium at /usr/bin/chromium",
    ),
]


@dataclass
class Server:
    """``bananabot run`` as a child process, with its stderr collected by a thread."""

    env: dict[str, str]
    url: str = ""
    stderr: list[str] = field(default_factory=list)
    returncode: int | None = None


def bot_env(tmp_path: Path) -> dict[str, str]:
    """The parent's environment without provider keys or bananabot settings, plus ours."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in PROVIDER_KEYS
        and not name.startswith("BANANABOT_")
        and name != "DATABASE_URL"
    }
    env.update(
        BANANABOT_WEB_PORT="0",
        BANANABOT_SANDBOX_DELAY="0.3",
        BANANABOT_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"sqlite:///{tmp_path}/bananabot.db",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    return env


@contextlib.contextmanager
def bananabot_run(tmp_path: Path) -> Iterator[Server]:
    """Start ``python -m bot.cli run`` (cwd ``tmp_path``, so no stray ``.env`` is read) and
    yield once it prints where it listens; SIGINT on exit, then kill after 10 s."""
    server = Server(env=bot_env(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        cwd=tmp_path,
        env=server.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    listening = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            server.stderr.append(line)
            found = LISTENING.search(line)
            if found and not server.url:
                server.url = found.group(1)
                listening.set()
        listening.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        listening.wait(timeout=30)
        assert server.url, "bananabot run did not start:\n" + "".join(server.stderr)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        server.returncode = process.returncode


def set_cap(env: dict[str, str], cwd: Path, dollars: str) -> None:
    """``bananabot budget set user local --limit <dollars>`` against the running server's DB."""
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "budget", "set", "user", "local", "--limit", dollars],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )


def options(page: Page, test_id: str) -> list[str]:
    """The option values of a select."""
    values: list[str] = (
        page.get_by_test_id(test_id).locator("option").evaluate_all("els => els.map(e => e.value)")
    )
    return values


def wait_images_loaded(page: Page, count: int) -> None:
    """Wait until ``count`` result images are on the page and every one has decoded."""
    expect(page.get_by_test_id("result-image")).to_have_count(count, timeout=20_000)
    page.wait_for_function(
        """n => {
            const images = [...document.querySelectorAll('[data-testid=result-image]')];
            return images.length === n && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=count,
        timeout=20_000,
    )


def test_generate_vary_and_edit_in_the_browser(tmp_path: Path) -> None:
    reference = tmp_path / "reference.png"
    Image.new("RGB", (96, 64), (240, 200, 40)).save(reference)

    with bananabot_run(tmp_path) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            expected = "the server responded with a status of 402"  # the over-budget step
            page.goto(server.url)
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.get_by_test_id("sandbox-banner")).to_be_visible()
            expect(page.get_by_test_id("budget")).to_have_text("No spending cap applies here.")

            # The size selects follow the model: Nano Banana Pro has no 0.5K and no 4:1.
            page.get_by_test_id("model").select_option("nano-banana-pro")
            assert "0.5K" not in options(page, "resolution")
            assert "4:1" not in options(page, "aspect-ratio")
            page.get_by_test_id("model").select_option("nano-banana-2")
            assert "0.5K" in options(page, "resolution")
            assert "4:1" in options(page, "aspect-ratio")

            page.get_by_test_id("prompt").fill("a banana surfing a wave of lemonade, comic style")
            page.get_by_test_id("aspect-ratio").select_option("16:9")
            page.get_by_test_id("references").set_input_files(str(reference))
            expect(page.get_by_test_id("reference-thumb")).to_have_count(1)
            expect(page.get_by_test_id("estimate")).to_contain_text("Estimate $0.06923")
            page.get_by_test_id("generate").click()

            job = page.get_by_test_id("job").first
            expect(job.get_by_test_id("job-status")).to_contain_text(
                re.compile(r"Queued #\d|Generating…|Done")
            )
            wait_images_loaded(page, 1)
            expect(job.get_by_test_id("job-status")).to_have_text("Done")
            expect(job.get_by_test_id("caption")).to_contain_text("sandbox")
            expect(job.get_by_test_id("sandbox-badge")).to_be_visible()
            expect(job.get_by_test_id("job-cost")).to_contain_text("Cost $0.06923")

            job.get_by_test_id("vary").click()
            wait_images_loaded(page, 2)
            expect(page.get_by_test_id("job")).to_have_count(2)
            expect(page.get_by_test_id("job").first).to_contain_text("Variation of image 1")

            newest = page.get_by_test_id("job").first
            newest.get_by_test_id("edit").click()
            newest.get_by_test_id("edit-instruction").fill("give the banana sunglasses")
            newest.get_by_test_id("edit-submit").click()
            wait_images_loaded(page, 3)
            expect(page.get_by_test_id("job").first).to_contain_text("Edit of image 1")
            expect(page.get_by_test_id("job").first.get_by_test_id("job-prompt")).to_have_text(
                "give the banana sunglasses"
            )
            page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)

            # After a reload the jobs come back from the history.
            page.reload()
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.get_by_test_id("job")).to_have_count(3)
            wait_images_loaded(page, 3)

            # Over budget: the reason appears inline and nothing new is queued.
            set_cap(server.env, tmp_path, "0.25")
            page.get_by_test_id("prompt").fill("one more banana, please")
            page.get_by_test_id("generate").click()
            expect(page.get_by_test_id("form-error")).to_contain_text(
                "Over budget: your daily cap is $0.25"
            )
            expect(page.get_by_test_id("form-error")).to_contain_text("Nothing was charged.")
            expect(page.get_by_test_id("job")).to_have_count(3)
            expect(page.get_by_test_id("budget")).to_contain_text(
                re.compile(r"Your daily cap: \$0\.\d+ of \$0\.25 left, resets ")
            )

            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(tmp_path / "playground-narrow.png"), full_page=True)
            assert [p for p in problems if expected not in p] == [], problems
        finally:
            browser.close()

    assert (tmp_path / "playground.png").stat().st_size > 10_000
    assert server.returncode == 0, "".join(server.stderr)
    assert not any("Traceback" in line for line in server.stderr), "".join(server.stderr)
