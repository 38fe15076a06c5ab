"""Vary, Upscale 4K and Edit (block_actions → views.open → view_submission): child jobs,
before and after a restart of the whole app between the result and the click."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.slack.translate import EDIT_CALLBACK, EDIT_INPUT_ACTION, EDIT_INPUT_BLOCK
from bot.models import Job, JobAction, JobStatus
from tests.fakes.slack import FakeSlack
from tests.test_slack_harness import JSON, Stack, button_values, running_slack

pytestmark = pytest.mark.timeout(45)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def _click(stack: Stack, action_id: str, message: JSON, user: str) -> Job:
    fake = stack.fake
    before = len(await stack.all_jobs(user))
    click = fake.block_actions(
        action_id, user=user, channel=fake.channel.id, message_ts=message["ts"]
    )
    response = await stack.post(click)
    assert response.status == 200 and response.latency < 3.0
    [child, *_] = await stack.jobs(user, count=before + 1)
    assert child.idempotency_key == f"slack:act:{click.payload['trigger_id']}"
    await stack.result(fake.channel.id, child.id)
    return (await stack.app.service.job(child.id))[0]


async def _edit(stack: Stack, message: JSON, user: str, instruction: str) -> Job:
    fake = stack.fake
    opened = len(fake.views_opened)
    click = fake.block_actions(
        "bb_edit", user=user, channel=fake.channel.id, message_ts=message["ts"]
    )
    assert (await stack.post(click)).status == 200
    view = await fake.wait_for(
        lambda: fake.views_opened[opened] if len(fake.views_opened) > opened else None,
        5,
        "views.open",
    )
    assert view["callback_id"] == EDIT_CALLBACK and view["user_id"] == user
    [job_value] = {v for v in button_values(message)}
    assert view["private_metadata"] == f"{job_value}:{fake.channel.id}:"

    short = fake.view_submission(
        EDIT_CALLBACK, {EDIT_INPUT_BLOCK: {EDIT_INPUT_ACTION: "x"}}, user=user, view_id=view["id"]
    )
    errors = (await stack.post(short)).json()
    assert errors == {
        "response_action": "errors",
        "errors": {EDIT_INPUT_BLOCK: "An edit needs an instruction. Allowed: 3..45000 characters."},
    }
    before = len(await stack.all_jobs(user))
    good = fake.view_submission(
        EDIT_CALLBACK,
        {EDIT_INPUT_BLOCK: {EDIT_INPUT_ACTION: instruction}},
        user=user,
        view_id=view["id"],
    )
    response = await stack.post(good)
    assert response.status == 200 and not response.body  # the modal closes
    [child, *_] = await stack.jobs(user, count=before + 1)
    assert child.idempotency_key == f"slack:view:{view['id']}:{view['hash']}"
    await stack.result(fake.channel.id, child.id)
    return (await stack.app.service.job(child.id))[0]


def _check(child: Job, action: JobAction, parent: Job) -> None:
    assert child.action is action and child.status is JobStatus.SUCCEEDED
    assert (child.parent_job_id, child.parent_index) == (parent.id, 0)
    if action is JobAction.VARY:
        assert child.request.prompt == parent.request.prompt
        assert child.request.seed is not None and not child.request.references
    else:
        assert len(child.request.references) == 1
    if action is JobAction.UPSCALE:
        assert child.request.resolution == "4K"


async def test_vary_upscale_and_edit_make_child_jobs(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        await stack.post(fake.slash_command(text="a small lighthouse --ar 3:2"))
        result = await stack.result(fake.channel.id)
        [parent] = await stack.jobs(fake.user.id)

        vary = await _click(stack, "bb_vary", result, fake.admin.id)
        _check(vary, JobAction.VARY, parent)
        assert vary.origin.user_id == fake.admin.id  # the clicker pays
        edit = await _edit(stack, result, fake.user.id, "paint it red")
        _check(edit, JobAction.EDIT, parent)
        assert edit.request.prompt == "paint it red"
        # Children of a top-level result are posted top-level, like the result.
        child_message = await stack.result(fake.channel.id, edit.id)
        assert "thread_ts" not in child_message or child_message["thread_ts"] == child_message["ts"]


async def test_buttons_work_after_a_restart(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        await stack.post(fake.slash_command(text="a quiet harbour"))
        result = await stack.result(fake.channel.id)
        [parent] = await stack.jobs(fake.user.id)

    async with running_slack(fake, tmp_path) as stack:
        upscale = await _click(stack, "bb_upscale", result, fake.user.id)
        _check(upscale, JobAction.UPSCALE, parent)
        upscaled = await stack.result(fake.channel.id, upscale.id)
        assert "bb_upscale" not in str(upscaled["blocks"])  # already 4K
        vary = await _click(stack, "bb_vary", result, fake.user.id)
        _check(vary, JobAction.VARY, parent)
        edit = await _edit(stack, result, fake.user.id, "add a moon")
        _check(edit, JobAction.EDIT, parent)


async def test_an_unknown_job_is_refused_privately(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        click = fake.block_actions("bb_vary", "nosuchjob:0", user=fake.user.id)
        assert (await stack.post(click)).status == 200
        note = await stack.ephemeral(fake.user.id, "nosuchjob")
        assert note["text"] == "⚠️ No job nosuchjob."
        await stack.adapter.idle()
        # The status message was removed again.
        assert [m for m in fake.bot_messages(fake.channel.id)] == []
