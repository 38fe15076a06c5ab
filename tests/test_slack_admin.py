"""Admin commands (who may change caps and policy), over-budget refusals, policy clamping,
and provider outcomes (safety block, NSFW) as Slack shows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.budgets import BudgetCap, CapScope, Period
from bot.models import JobStatus
from bot.policy import ChannelPolicy
from bot.service import utcnow
from tests.fakes.runware import NSFW_MARKER, SAFETY_BLOCK_MARKER, RunwareEmulator
from tests.fakes.slack import FakeSlack
from tests.test_slack_harness import Stack, block_types, button_values, running_slack

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def _command(stack: Stack, command: str, text: str, user: str) -> str:
    """Run an admin command and return its (single, ephemeral) answer."""
    request = stack.fake.slash_command(command, text, user_id=user)
    response = await stack.post(request)
    assert response.status == 200 and response.latency < 3.0
    url = request.payload["response_url"]
    posts = await stack.fake.wait_for(lambda: stack.fake.response_posts(url), 5, command)
    [post] = posts
    assert post.accepted and post.body["response_type"] == "ephemeral"
    return str(post.body["text"])


async def test_only_admins_owners_and_listed_people_change_caps_and_policy(
    fake: FakeSlack, tmp_path: Path
) -> None:
    helper = fake.add_user("U0HELPER", "hal")
    async with running_slack(fake, tmp_path, admins=[helper.id]) as stack:
        store = stack.app.store
        cap = f"set user 0.10 day <@{fake.user.id}|alice>"
        denied = await _command(stack, "/imagine-budget", cap, fake.user.id)
        assert denied.startswith("⚠️ Only workspace admins and owners")
        assert await store.list_caps(fake.team_id) == []
        denied = await _command(stack, "/imagine-policy", "set low", fake.user.id)
        assert denied.startswith("⚠️ Only workspace admins and owners")
        assert await store.get_policy(fake.team_id, fake.channel.id) is None

        done = await _command(stack, "/imagine-budget", cap, fake.admin.id)
        assert done == f"Set <@{fake.user.id}>'s daily cap to $0.10."
        done = await _command(stack, "/imagine-budget", "set channel 5 week", fake.owner.id)
        assert done == "Set this channel's weekly cap to $5.00."
        done = await _command(stack, "/imagine-budget", "set workspace 50 month", helper.id)
        assert done == "Set this workspace's monthly cap to $50.00."
        caps = {
            (c.scope, c.scope_id, c.period, c.limit_micros)
            for c in await store.list_caps(fake.team_id)
        }
        assert caps == {
            (CapScope.USER, fake.user.id, Period.DAY, 100_000),
            (CapScope.CHANNEL, fake.channel.id, Period.WEEK, 5_000_000),
            (CapScope.WORKSPACE, fake.team_id, Period.MONTH, 50_000_000),
        }
        shown = await _command(stack, "/imagine-budget", "", fake.user.id)
        assert shown.startswith("*Caps that apply to you here*")
        assert "Every cap" not in shown and shown.count("• ") == 3
        removed = await _command(stack, "/imagine-budget", "remove channel week", fake.admin.id)
        assert removed == "Removed this channel's weekly cap."

        policy = await _command(stack, "/imagine-policy", "set medium", fake.admin.id)
        assert policy.startswith(f"Set <#{fake.channel.id}>'s policy to *medium*.")
        assert await store.get_policy(fake.team_id, fake.channel.id) == ChannelPolicy(
            max_tolerance="medium"
        )
        shown = await _command(stack, "/imagine-policy", "", fake.user.id)
        assert "most permissive safety tolerance is *medium*" in shown
        usage = await _command(stack, "/imagine-usage", "week", fake.user.id)
        assert usage.startswith("*Your spend this week*: $0.00") and "Top spenders" not in usage
        usage = await _command(stack, "/imagine-usage", "", fake.owner.id)
        assert "*Top spenders*" in usage
        assert [r.params["user"] for r in fake.calls("users.info")] == [
            fake.user.id,
            fake.admin.id,
            fake.owner.id,
        ]  # cached per person


async def test_over_budget_is_refused_privately_and_nothing_is_posted(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path) as stack:
        cap = BudgetCap(
            scope=CapScope.USER,
            workspace_id=fake.team_id,
            scope_id=fake.user.id,
            period=Period.DAY,
            limit_micros=50_000,
        )
        await stack.app.store.set_cap(cap, utcnow())
        assert (await stack.post(fake.slash_command(text="an expensive castle"))).status == 200
        note = await stack.ephemeral(fake.user.id, "Over budget")
        assert note["text"].startswith(
            "⚠️ Over budget: your daily cap is $0.05 and $0.05 is left, but this needs up to "
            "$0.06895. It resets "
        )
        assert note["text"].endswith("Nothing was charged.")
        await stack.adapter.idle()
        assert await stack.all_jobs(fake.user.id) == []
        assert not fake.calls("chat.postMessage")


async def test_a_tolerance_above_the_channel_policy_is_clamped_and_said(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path) as stack:
        await stack.app.store.set_policy(
            fake.team_id, fake.channel.id, ChannelPolicy(max_tolerance="low"), utcnow()
        )
        await stack.post(fake.slash_command(text="a storm at sea --safety off"))
        message = await stack.result(fake.channel.id)
        [job] = await stack.jobs(fake.user.id)
        assert job.request.safety_tolerance == "low"
        assert "Safety tolerance 'off' is above this channel's limit; used 'low' instead." in str(
            message["blocks"][-1]
        )


async def test_provider_safety_block_and_nsfw_results(fake: FakeSlack, tmp_path: Path) -> None:
    async with (
        RunwareEmulator(api_key="test-key") as runware,
        running_slack(
            fake,
            tmp_path,
            runware_api_key="test-key",
            runware_api_url=runware.base_url,
            providers=["runware"],
        ) as stack,
    ):
        await stack.post(fake.slash_command(text=f"a {SAFETY_BLOCK_MARKER} scene"))
        note = await stack.ephemeral(fake.user.id, "safety filter")
        assert note["text"] == (
            "⚠️ The provider's safety filter blocked this prompt or its result. "
            "You were not charged."
        )
        [blocked] = await stack.jobs(fake.user.id)
        assert blocked.status is JobStatus.FAILED and blocked.cost_micros == 0
        status = fake.bot_messages(fake.channel.id)[0]
        assert "could not be made; nothing was charged" in status["text"]

        await stack.post(fake.slash_command(text=f"a {NSFW_MARKER} scene"))
        flagged = (await stack.jobs(fake.user.id, count=2))[0]
        message = await fake.wait_for(
            lambda: next(
                (
                    m
                    for m in fake.bot_messages(fake.channel.id)
                    if "Withheld" in str(m.get("blocks"))
                ),
                None,
            ),
            15,
            "the withheld result",
        )
        assert "image" not in block_types(message) and not button_values(message)
        assert fake.uploaded == []  # a withheld image is never uploaded

        # A crafted click on the withheld image is refused by policy.
        click = fake.block_actions("bb_vary", f"{flagged.id}:0", user=fake.user.id)
        await stack.post(click)
        refused = await stack.ephemeral(fake.user.id, "withheld")
        assert refused["text"] == "⚠️ This image was withheld as NSFW and cannot be reused."
