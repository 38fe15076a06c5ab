"""The ``bananabot`` command as a person runs it: real processes, the sandbox and the emulator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.cli import masked_url
from bot.money import usd_to_micros
from bot.storage import SqliteStore
from tests.fakes.provider import png_bytes
from tests.fakes.runware import RunwareEmulator
from tests.procs import OUR_PREFIXES

FIXTURE = Path(__file__).parent / "fixtures" / "runware-seed-examples.json"
EXAMPLES: list[dict[str, Any]] = json.loads(FIXTURE.read_text("utf-8"))["examples"]
MODELS = {"google:4@2": "nano-banana-pro", "google:4@3": "nano-banana-2"}
SECRET = "rw-test-key-0123456789"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith((*OUR_PREFIXES, "DATABASE_URL"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "BANANABOT_DATA_DIR": str(tmp_path / "data"),
            "BANANABOT_SANDBOX_DELAY": "0",
            "BANANABOT_POLL_INITIAL": "0.02",
            "BANANABOT_POLL_MAX": "0.1",
        }
    )
    env.update(extra)
    return env


async def bananabot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_imagine_with_the_sandbox_writes_an_image(tmp_path: Path) -> None:
    code, out, err = await bananabot(
        "imagine",
        "a lighthouse at dusk",
        "--provider",
        "sandbox",
        "--aspect-ratio",
        "16:9",
        "--out",
        str(tmp_path / "out"),
        env=env_for(tmp_path),
        cwd=tmp_path,
    )
    assert code == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert set(line) >= {"path", "seed", "width", "height", "cost_usd", "provider", "model"}
    assert (line["provider"], line["model"], line["width"], line["height"]) == (
        "sandbox",
        "nano-banana-2",
        1376,
        768,
    )
    with Image.open(line["path"]) as image:
        assert image.size == (1376, 768)
    assert "sandbox" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ab"], "prompt must be 3 to 45,000 characters"),
        (["a lighthouse", "--aspect-ratio", "7:3"], "Allowed: 1:1, 3:2"),
        (
            ["a lighthouse", "--model", "nano-banana-pro", "--resolution", "0.5K"],
            "Allowed: 1K, 2K, 4K",
        ),
        (["a lighthouse", "--width", "1000", "--height", "1000"], "1000x1000 is not a size"),
        (["a lighthouse", "--ref", "/no/such/file.png"], "Reference image 1 could not be used"),
        (["a lighthouse", "--provider", "runware"], "Provider 'runware' is not configured"),
    ],
)
async def test_bad_input_exits_non_zero_with_one_clear_line(
    tmp_path: Path, args: list[str], says: str
) -> None:
    code, out, err = await bananabot("imagine", *args, env=env_for(tmp_path), cwd=tmp_path)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in err


async def test_budget_caps_are_set_shown_and_enforced(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    code, out, _ = await bananabot(
        "budget", "set", "user", "someone", "--limit", "0.10", env=env, cwd=tmp_path
    )
    assert code == 0 and "$0.10" in out
    code, out, err = await bananabot(
        "budget", "set", "workspace", "--limit", "0.05", "--period", "month", env=env, cwd=tmp_path
    )
    assert code == 0, err
    code, out, err = await bananabot(
        "imagine", "a lighthouse at dusk", "--provider", "sandbox", env=env, cwd=tmp_path
    )
    assert code == 2
    assert "this workspace's monthly cap is $0.05" in err and "Nothing was charged" in err
    code, out, _ = await bananabot("budget", "show", env=env, cwd=tmp_path)
    assert "user someone" in out and "workspace" in out and "left      $0.05" in out


async def test_doctor_masks_secrets(tmp_path: Path) -> None:
    code, out, err = await bananabot(
        "doctor", env=env_for(tmp_path, RUNWARE_API_KEY=SECRET), cwd=tmp_path
    )
    assert code == 0, out + err
    assert SECRET not in out + err
    assert "RUNWARE_API_KEY" in out and "(set, hidden)" in out
    assert "Providers in routing order: runware" in out


def test_database_passwords_are_masked() -> None:
    assert masked_url("postgresql://bot:hunter2@db.example.com:5432/bananabot") == (
        "postgresql://bot:***@db.example.com:5432/bananabot"
    )
    assert masked_url("postgresql://bot@[::1]/b") == "postgresql://bot@[::1]/b"
    assert masked_url("sqlite:///bananabot.db") == "sqlite:///bananabot.db"


async def test_imagine_follows_a_failover_to_the_next_provider(tmp_path: Path) -> None:
    """Runware refuses the connection: the job moves to the sandbox and the CLI follows it
    there instead of waiting for ever."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens here once the socket closes
    env = env_for(
        tmp_path,
        RUNWARE_API_KEY="rw-key",
        RUNWARE_API_URL=f"http://127.0.0.1:{closed}/v1",
        BANANABOT_PROVIDERS="runware,sandbox",
    )
    code, out, err = await bananabot(
        "imagine", "a red barn", "--out", str(tmp_path / "out"), env=env, cwd=tmp_path
    )
    assert code == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["provider"] == "sandbox" and Path(line["path"]).is_file()


async def test_budget_commands_work_beside_a_running_bot(tmp_path: Path) -> None:
    """SQLite serves one worker process; admin commands beside it are short transactions."""
    env = env_for(tmp_path)
    db = tmp_path / "cli.db"
    async with SqliteStore(db) as holder:  # stands in for `bananabot run`
        assert holder is not None
        code, out, err = await bananabot(
            "budget", "set", "workspace", "local", "--limit", "5", env=env, cwd=tmp_path
        )
        assert code == 0, out + err
        code, out, err = await bananabot("imagine", "a red barn", env=env, cwd=tmp_path)
        assert code == 3 and "another bananabot process" in err


def seed_args(body: dict[str, Any], refs: list[Path]) -> list[str]:
    """A seed example's request as ``bananabot imagine`` flags."""
    args = [
        body["positivePrompt"],
        "--provider",
        "runware",
        "--model",
        MODELS[body["model"]],
        "--width",
        str(body["width"]),
        "--height",
        str(body["height"]),
    ]
    if "seed" in body:
        args += ["--seed", str(body["seed"])]
    settings = body.get("settings", {})
    for key, flag in (
        ("temperature", "--temperature"),
        ("topP", "--top-p"),
        ("systemPrompt", "--system-prompt"),
        ("thinking", "--thinking"),
    ):
        if key in settings:
            args += [flag, str(settings[key])]
    google = body["providerSettings"]["google"]
    for key, flag in (("webSearch", "web-search"), ("imageSearch", "image-search")):
        if key in google:
            args.append(f"--{flag}" if google[key] else f"--no-{flag}")
    args += ["--safety-tolerance", google["safetyTolerance"]]
    for path in refs:
        args += ["--ref", str(path)]
    return args


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["title"] for e in EXAMPLES])
async def test_imagine_runs_each_seed_example_through_the_runware_emulator(
    tmp_path: Path, example: dict[str, Any]
) -> None:
    body = example["request"]
    refs = []
    for i, _url in enumerate(body.get("inputs", {}).get("referenceImages", [])):
        path = tmp_path / f"ref{i}.png"
        path.write_bytes(png_bytes(96, 64, (40 * i, 90, 200)))
        refs.append(path)
    async with RunwareEmulator(api_key=SECRET) as emu:
        env = env_for(
            tmp_path,
            RUNWARE_API_KEY=SECRET,
            RUNWARE_API_URL=emu.base_url,
            BANANABOT_SAFETY_MAX_DEFAULT="off",
        )
        code, out, err = await bananabot(
            "imagine", *seed_args(body, refs), "--out", str(tmp_path / "out"), env=env, cwd=tmp_path
        )
        assert code == 0, err
        (sent,) = emu.tasks.values()
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert usd_to_micros(line["cost_usd"]) == usd_to_micros(example["response"]["cost"])
    assert (line["provider"], line["width"], line["height"]) == (
        "runware",
        body["width"],
        body["height"],
    )
    assert Image.open(io.BytesIO(Path(line["path"]).read_bytes())).size == (
        body["width"],
        body["height"],
    )
    for key, value in body.items():
        if key in ("taskUUID", "inputs"):
            continue
        assert sent[key] == value, key
    assert len(sent.get("inputs", {}).get("referenceImages", [])) == len(refs)
    assert SECRET not in out + err
