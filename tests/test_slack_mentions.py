"""Mentions: reference images from the message and its thread parent, the files:read
sign-in page, edits by replying to a result, duplicate deliveries, direct messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.budgets import Period
from bot.models import JobAction, Origin
from tests.fakes.slack import FakeSlack
from tests.test_slack_harness import button_values, png, running_slack

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_thread_reply_with_two_images_uses_them_and_the_parent_image(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path) as stack:
        fake.add_file(
            png(80, 80, (0, 120, 0)), "room.png", user=fake.user.id, channel=fake.channel.id
        )
        parent = fake.messages_in(fake.channel.id)[-1]
        first = fake.add_file(png(64, 48), "cat.png", user=fake.user.id)
        second = fake.add_file(png(48, 64, (0, 0, 200)), "sofa.jpg", "image/png", user=fake.user.id)
        mention = fake.app_mention(
            "the cat on the sofa in this room",
            channel=fake.channel.id,
            thread_ts=parent["ts"],
            files=[first, second],
        )
        # The same message also arrives as a `message` event (Slack sends both).
        as_message = {**mention, "type": "message", "subtype": "file_share"}
        as_message["channel_type"] = "channel"
        responses = await asyncio.gather(
            stack.post(fake.event_callback(mention)),
            stack.post(fake.event_callback(as_message)),
        )
        assert [r.status for r in responses] == [200, 200]

        message = await stack.result(fake.channel.id)
        [job] = await stack.jobs(fake.user.id)
        assert job.request.prompt == "the cat on the sofa in this room"
        assert [(r.width, r.height) for r in job.request.references] == [
            (64, 48),
            (48, 64),
            (80, 80),
        ]
        assert job.idempotency_key == f"slack:msg:{fake.channel.id}:{mention['ts']}"
        assert message.get("thread_ts") == parent["ts"]  # answered in the thread
        downloads = fake.calls("file")
        assert len(downloads) == 3
        assert all(r.headers["Authorization"] == f"Bearer {fake.bot_token}" for r in downloads)
        await stack.adapter.idle()
        assert len(await stack.all_jobs(fake.user.id)) == 1


async def test_a_file_answered_with_the_sign_in_page_is_explained_and_not_charged(
    fake: FakeSlack, tmp_path: Path
) -> None:
    fake.scopes.discard("files:read")
    async with running_slack(fake, tmp_path) as stack:
        ref = fake.add_file(png(), "cat.png", user=fake.user.id)
        mention = fake.app_mention("a cat in a hat", channel=fake.channel.id, files=[ref])
        assert (await stack.post(fake.event_callback(mention))).status == 200
        note = await stack.ephemeral(fake.user.id, "files:read")
        assert note["text"].startswith(
            "⚠️ Reference image 1 could not be used: Slack sent its sign-in page"
        )
        assert note["thread_ts"] == mention["ts"] and note["source"] == "chat.postEphemeral"
        await stack.adapter.idle()
        assert await stack.all_jobs(fake.user.id) == []
        assert not fake.calls("chat.postMessage")  # nothing shown in the channel
        origin = Origin(platform="slack", workspace_id=fake.team_id, channel_id="", user_id="")
        report = await stack.app.service.usage_report(origin, Period.TOTAL)
        assert report.top_users == () and report.own_spent_micros == 0


async def test_a_mention_in_the_thread_of_a_result_edits_that_result(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path) as stack:
        await stack.post(fake.slash_command(text="a plain teapot"))
        result = await stack.result(fake.channel.id)
        [parent] = await stack.jobs(fake.user.id)
        reply = fake.app_mention("make it gold", channel=fake.channel.id, thread_ts=result["ts"])
        await stack.post(fake.event_callback(reply, event_id="EvEDIT", retry_num=None))
        # Slack retries the event: no second job.
        await stack.post(fake.event_callback(reply, event_id="EvEDIT", retry_num=1))
        child_jobs = await stack.jobs(fake.user.id, count=2)
        child = child_jobs[0]
        assert child.action is JobAction.EDIT
        assert (child.parent_job_id, child.parent_index) == (parent.id, 0)
        assert child.request.prompt == "make it gold"
        assert len(child.request.references) == 1
        edited = await stack.result(fake.channel.id, child.id)
        assert edited.get("thread_ts") == result["ts"]
        assert button_values(edited)[0] == f"{child.id}:0"
        await stack.adapter.idle()
        assert len(await stack.all_jobs(fake.user.id)) == 2


async def test_a_direct_message_needs_no_mention(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        event = fake.user_message("a fox in the snow", channel=fake.dm.id)
        assert (await stack.post(fake.event_callback(event))).status == 200
        message = await stack.result(fake.dm.id)
        assert "thread_ts" not in message or message["thread_ts"] == message["ts"]
        [job] = await stack.jobs(fake.user.id)
        assert job.origin.channel_id == fake.dm.id
        # Chatter in a channel without a mention starts nothing.
        await stack.post(
            fake.event_callback(fake.user_message("nice fox", channel=fake.channel.id))
        )
        await stack.adapter.idle()
        assert len(await stack.all_jobs(fake.user.id)) == 1


async def test_a_mention_with_a_bad_flag_is_answered_privately(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path) as stack:
        mention = fake.app_mention("a dog --res 9K", channel=fake.channel.id)
        await stack.post(fake.event_callback(mention))
        note = await stack.ephemeral(fake.user.id, "--res 9K")
        assert note["text"] == "⚠️ --res 9K is not a resolution. Allowed: 0.5K, 1K, 2K, 4K."
        await stack.adapter.idle()
        assert await stack.all_jobs(fake.user.id) == []


def manifest_lines() -> list[str]:
    return (Path(__file__).parents[1] / "slack-manifest.yml").read_text("utf-8").splitlines()


def manifest_list(key: str) -> list[str]:
    """The items of a YAML list under ``key:`` (a flat list of ``- value  # comment``)."""
    lines = manifest_lines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}:")
    items = []
    for line in lines[start + 1 :]:
        if not line.strip().startswith("- "):
            break
        items.append(line.split("#")[0].strip().removeprefix("- ").strip())
    return items


def test_the_manifest_declares_the_commands_events_and_modes_the_adapter_uses() -> None:
    text = "\n".join(manifest_lines())
    commands = [line.split(":", 1)[1].strip() for line in manifest_lines() if "- command:" in line]
    assert commands == ["/imagine", "/imagine-budget", "/imagine-policy", "/imagine-usage"]
    assert manifest_list("bot_events") == [
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "message.mpim",
    ]
    assert "is_enabled: true" in text and "socket_mode_enabled: true" in text
    assert "files:read" in manifest_list("bot") and "files.upload" not in text


async def test_everything_works_with_exactly_the_manifest_scopes(tmp_path: Path) -> None:
    scopes = manifest_list("bot")
    async with FakeSlack(scopes=scopes) as fake, running_slack(fake, tmp_path) as stack:
        fake.add_file(png(80, 80), "room.png", user=fake.user.id, channel=fake.channel.id)
        parent = fake.messages_in(fake.channel.id)[-1]
        ref = fake.add_file(png(), "cat.png", user=fake.user.id)
        mention = fake.app_mention(
            "a cat in the room", channel=fake.channel.id, thread_ts=parent["ts"], files=[ref]
        )
        await stack.post(fake.event_callback(mention))
        await stack.result(fake.channel.id)
        [job] = await stack.jobs(fake.user.id)
        assert len(job.request.references) == 2
        request = fake.slash_command("/imagine-budget", "set workspace 10", user_id=fake.owner.id)
        await stack.post(request)
        await fake.wait_for(lambda: fake.response_posts(request.payload["response_url"]), 5, "x")
        assert await stack.app.store.list_caps(fake.team_id)
        await stack.adapter.idle()
        refused = [r for r in fake.requests if r.error == "missing_scope"]
        assert refused == []
