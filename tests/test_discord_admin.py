"""Admin commands (runtime permission checks) and the ``bananabot discord`` / ``run`` commands."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.budgets import CapScope, Period
from tests.fakes.discord import FakeDiscord
from tests.test_discord_e2e import EPHEMERAL, job_of
from tests.test_discord_harness import Bot, running_bot

pytestmark = pytest.mark.timeout(45)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


async def command(bot: Bot, name: str, options: dict[str, Any], user: Any) -> str:
    """Run an ephemeral command and return its answer (the refusal or the edited response)."""
    payload = await bot.send(bot.fake.slash_command(name, options, user=user))
    [callback] = bot.fake.callbacks_for(payload["id"])
    assert callback.data["flags"] == EPHEMERAL
    if callback.type == 4:
        return str(callback.data["content"])
    assert callback.type == 5

    def answered() -> bool:
        message = bot.fake.original_message(payload["id"])
        return bool(message and message["content"])

    await bot.fake.wait_until(answered, 10, f"the answer to /{name}")
    message = bot.fake.original_message(payload["id"])
    assert message is not None
    return str(message["content"])


async def test_only_admins_set_caps(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running_bot(fake, tmp_path) as bot:
        guild = str(fake.guild.id)
        for scope, need in (
            ("server", "Manage Server"),
            ("user", "Manage Server"),
            ("channel", "Manage Channels"),
        ):
            options = {
                "scope": scope,
                "limit": "5",
                **({"user": fake.member} if scope == "user" else {}),
            }
            text = await command(bot, "budget set", options, fake.member)
            assert f"You need the **{need}** permission" in text
        assert await bot.store.list_caps(guild) == []

        text = await command(
            bot, "budget set", {"scope": "server", "limit": "5", "period": "week"}, fake.admin
        )
        assert text == "Set the server's weekly cap to $5.00."
        text = await command(
            bot, "budget set", {"scope": "user", "limit": "$0.50", "user": fake.member}, fake.admin
        )
        assert text == f"Set <@{fake.member.id}>'s daily cap to $0.50."
        # The admin role has Manage Server, not Manage Channels; the owner has everything.
        text = await command(bot, "budget set", {"scope": "channel", "limit": "2"}, fake.admin)
        assert "Manage Channels" in text
        text = await command(bot, "budget set", {"scope": "channel", "limit": "2"}, fake.owner)
        assert text == f"Set <#{fake.channel.id}>'s daily cap to $2.00."
        text = await command(bot, "budget set", {"scope": "server", "limit": "five"}, fake.admin)
        assert "not an amount in US dollars" in text

        caps = {
            (c.scope, c.scope_id, c.period, c.limit_micros)
            for c in await bot.store.list_caps(guild)
        }
        assert caps == {
            (CapScope.WORKSPACE, guild, Period.WEEK, 5_000_000),
            (CapScope.USER, str(fake.member.id), Period.DAY, 500_000),
            (CapScope.CHANNEL, str(fake.channel.id), Period.DAY, 2_000_000),
        }

        mine = await command(bot, "budget show", {}, fake.member)
        assert "Every cap" not in mine and mine.count("•") == 3
        assert f"<@{fake.member.id}>, day: $0.50 of $0.50 left" in mine
        every = await command(bot, "budget show", {}, fake.admin)
        assert "Every cap on this server" in every and every.count("•") == 2 + 3

        text = await command(
            bot, "budget remove", {"scope": "server", "period": "week"}, fake.admin
        )
        assert text == "Removed the server's weekly cap."
        assert len(await bot.store.list_caps(guild)) == 2


async def test_policy_needs_manage_channels_and_only_tightens(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:
        text = await command(bot, "policy set", {"max_tolerance": "off"}, fake.member)
        assert "Manage Channels" in text
        text = await command(bot, "policy set", {"max_tolerance": "low"}, fake.owner)
        assert "Set this channel's policy to **low**" in text
        assert "most permissive safety tolerance is **low**" in text
        text = await command(
            bot, "policy set", {"max_tolerance": "high", "scope": "server"}, fake.admin
        )
        assert "Set the server's policy to **high**" in text
        shown = await command(bot, "policy show", {}, fake.member)
        assert "**low**" in shown  # a channel can tighten the server's policy, never loosen


async def test_usage_shows_own_spend_and_admins_see_top_spenders(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:
        payload = await bot.imagine({"prompt": "a paid banana"})
        job_of(await bot.result_of(payload["id"]))
        mine = await command(bot, "usage", {"period": "day"}, fake.member)
        assert mine.startswith("**Your spend this day**: $0.06895") and "Top spenders" not in mine
        admin = await command(bot, "usage", {}, fake.admin)
        assert "**Top spenders**" in admin and f"<@{fake.member.id}>: $0.06895" in admin
        assert f"<#{fake.channel.id}>: $0.06895" in admin


# --- the command line -------------------------------------------------------------------------


def _env(tmp_path: Path, fake: FakeDiscord | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BANANABOT_", "RUNWARE_", "DATABASE_URL", "DISCORD_", "SLACK_"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "BANANABOT_DATA_DIR": str(tmp_path / "data"),
            "BANANABOT_SANDBOX_DELAY": "0",
            "BANANABOT_WEB_PORT": "0",
        }
    )
    if fake is not None:
        env.update(
            {
                "DISCORD_TOKEN": fake.token,
                "DISCORD_API_URL": fake.api_url,
                "DISCORD_GATEWAY_URL": fake.gateway_url,
            }
        )
    env.update(extra)
    return env


async def _start(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def bananabot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await _start(*args, env=env, cwd=cwd)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_invite_url_comes_from_the_token(tmp_path: Path) -> None:
    token = base64.b64encode(b"123456789012345678").decode().rstrip("=") + ".GhIjKl.secret"
    code, out, _ = await bananabot(
        "discord", "invite-url", env=_env(tmp_path, DISCORD_TOKEN=token), cwd=tmp_path
    )
    assert code == 0
    url = out.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=123456789012345678")
    # View Channels, Send Messages (+ in threads), Embed Links, Attach Files, Read History.
    perms = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 14) | (1 << 15) | (1 << 16)
    assert "scope=bot+applications.commands" in url and f"permissions={perms}" in url
    code, out, _ = await bananabot(
        "discord", "invite-url", "--client-id", "42", env=_env(tmp_path), cwd=tmp_path
    )
    assert code == 0 and "client_id=42&" in out
    code, _, err = await bananabot("discord", "invite-url", env=_env(tmp_path), cwd=tmp_path)
    assert code == 3 and "DISCORD_TOKEN" in err


async def test_sync_pushes_commands_to_test_guilds_or_globally(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    env = _env(tmp_path, fake, DISCORD_GUILD_IDS=str(fake.guild.id))
    code, out, err = await bananabot("discord", "sync", env=env, cwd=tmp_path)
    assert code == 0, err
    assert f"Synced guild {fake.guild.id}: imagine" in out
    assert {c["name"] for c in fake.commands_for(fake.guild.id)} >= {"imagine", "budget"}
    assert not fake.connections  # REST only: no gateway session for a sync
    code, out, err = await bananabot("discord", "sync", env=_env(tmp_path, fake), cwd=tmp_path)
    assert code == 0 and "Synced global: imagine" in out
    assert "Imagine from this" in {c["name"] for c in fake.commands_for(None)}


async def test_run_starts_discord_without_the_playground_and_stops_cleanly(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    code, _out, err = await bananabot("discord", "sync", env=_env(tmp_path, fake), cwd=tmp_path)
    assert code == 0, err
    process = await _start("run", env=_env(tmp_path, fake), cwd=tmp_path)
    try:
        await fake.wait_ready(timeout=20)
        payload = await fake.send_interaction(fake.slash_command("imagine", {"prompt": "hello"}))
        await fake.wait_until(
            lambda: bool((fake.original_message(payload["id"]) or {}).get("components")),
            20,
            "a result from the bot process",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    assert "playground" not in stderr.decode()


async def test_run_with_a_refused_token_exits_with_a_configuration_error(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    env = _env(tmp_path, fake, DISCORD_TOKEN="not-the-token")
    code, _, err = await bananabot("run", env=env, cwd=tmp_path)
    assert code == 3 and "Discord refused DISCORD_TOKEN" in err
