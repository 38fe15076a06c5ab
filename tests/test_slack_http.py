"""``/imagine`` over HTTP mode and Socket Mode: ack, status updates, upload, result buttons,
signatures, redeliveries."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.models import JobStatus
from tests.fakes.slack import FakeSlack
from tests.test_slack_harness import (
    Stack,
    action_ids,
    block_types,
    button_values,
    running_slack,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


def acks_observed(stack: Stack, platform: str) -> float:
    """How many acknowledgements ``bananabot_ack_seconds`` has counted for ``platform``."""
    value = stack.app.metrics.registry.get_sample_value(
        "bananabot_ack_seconds_count", {"platform": platform}
    )
    return value or 0.0


async def test_imagine_acks_then_uploads_and_posts_the_result_with_buttons(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path, sandbox_delay=0.3) as stack:
        request = fake.slash_command("/imagine", "a lighthouse at dusk --ar 16:9")
        response = await stack.post(request)
        assert response.status == 200 and response.latency < 3.0
        ack = response.json()
        assert ack["text"].startswith("⏳ Queued: *a lighthouse at dusk*")
        assert ack.get("response_type", "ephemeral") == "ephemeral"
        # The ack was timed for /metrics (bolt still injected every listener argument).
        assert acks_observed(stack, "slack") == 1

        message = await stack.result(fake.channel.id)
        [job] = await stack.jobs(fake.user.id)
        assert job.status is JobStatus.SUCCEEDED
        assert job.idempotency_key == f"slack:cmd:{request.payload['trigger_id']}"
        assert (job.origin.workspace_id, job.origin.channel_id, job.origin.user_id) == (
            fake.team_id,
            fake.channel.id,
            fake.user.id,
        )
        assert job.request.aspect_ratio == "16:9"

        # The status message became the result: image block, context line, three buttons.
        assert block_types(message) == ["section", "image", "context", "actions", "context"]
        assert action_ids(message) == ["bb_vary", "bb_upscale", "bb_edit"]
        assert button_values(message) == [f"{job.id}:0"] * 3
        [upload] = fake.uploaded
        assert message["blocks"][1]["slack_file"] == {"id": upload.id}
        assert (upload.channel, upload.thread_ts) == (fake.channel.id, message["ts"])
        assert upload.mimetype == "image/jpeg" and upload.data[:3] == b"\xff\xd8\xff"
        caption = message["blocks"][2]["elements"][0]["text"]
        assert "Nano Banana 2 · 1376x768 · seed" in caption and "$" in caption
        assert "Cost $" in message["blocks"][4]["elements"][0]["text"]
        assert message["text"]  # fallback text always sent

        # Progress went through chat.update of the same message, never backwards.
        updates = [r for r in fake.calls("chat.update") if r.params["ts"] == message["ts"]]
        texts = [r.params["text"] for r in updates]
        generating = [i for i, t in enumerate(texts) if t.startswith("🎨")]
        assert generating and not any(t.startswith("⏳") for t in texts[generating[0] :])
        assert len(fake.calls("chat.postMessage")) == 1
        # The image block was refused while Slack "processed" the upload, then accepted.
        refused = [r for r in updates if r.error == "invalid_blocks"]
        assert refused and updates[-1].ok


async def test_bad_signature_and_stale_timestamp_are_refused_and_submit_nothing(
    fake: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_slack(fake, tmp_path) as stack:
        forged = await stack.post(fake.slash_command(text="a forged cat", bad_signature=True))
        stale = await stack.post(fake.slash_command(text="a stale cat", stale=True))
        assert (forged.status, stale.status) == (401, 401)
        tampered = fake.slash_command(text="a cat")
        altered = await stack.post(
            type(tampered)(tampered.body.replace(b"a+cat", b"a+dog"), tampered.headers)
        )
        assert altered.status == 401
        await stack.adapter.idle()  # listeners spawn their work before the response
        assert await stack.all_jobs(fake.user.id) == []
        assert not fake.calls("chat.postMessage") and not fake.ephemeral
        refusals = [r for r in caplog.records if "bad signature" in r.getMessage()]
        assert len(refusals) == 3
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "forged" not in logged and "response_url" not in logged  # bodies stay out


async def test_a_retried_command_makes_no_second_job(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        request = fake.slash_command("/imagine", "one teapot")
        first = await stack.post(request)
        retry = await stack.post(
            request, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        )
        assert (first.status, retry.status) == (200, 200)
        await stack.result(fake.channel.id)
        await stack.adapter.idle()
        assert len(await stack.all_jobs(fake.user.id)) == 1
        assert len(fake.calls("chat.postMessage")) == 1

    # After a restart the in-memory filter is gone; the idempotency key still holds.
    async with running_slack(fake, tmp_path) as stack:
        again = await stack.post(request)
        assert again.status == 200
        await fake.wait_for(lambda: len(fake.calls("chat.delete")) == 1, 10, "the duplicate")
        await stack.adapter.idle()
        assert len(await stack.all_jobs(fake.user.id)) == 1
        assert len([m for m in fake.bot_messages(fake.channel.id) if "files" not in m]) == 1


async def test_bad_flags_and_sizes_are_answered_in_the_ack(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path) as stack:
        unknown = (await stack.post(fake.slash_command(text="a cat --style anime"))).json()
        assert unknown["text"].startswith("⚠️ --style is not a flag /imagine knows.")
        assert "Allowed: --model, --ar, --res, --seed, --n, --safety." in unknown["text"]
        tier = (await stack.post(fake.slash_command(text="a cat --model pro --res 0.5K"))).json()
        assert tier["text"] == ("⚠️ Nano Banana Pro has no 0.5K resolution. Allowed: 1K, 2K, 4K.")
        ratio = (await stack.post(fake.slash_command(text="a cat --ar 5:7"))).json()
        assert ratio["text"].startswith("⚠️ Nano Banana 2 at 1K has no 5:7 aspect ratio.")
        assert "16:9" in ratio["text"]
        model = (await stack.post(fake.slash_command(text="a cat --model gpt"))).json()
        assert model["text"] == "⚠️ --model gpt is not a model. Allowed: pro, nb2."
        usage = (await stack.post(fake.slash_command(text="  "))).json()
        assert usage["text"].startswith("Usage: `/imagine <prompt>")
        await stack.adapter.idle()  # listeners spawn their work before the response
        assert await stack.all_jobs(fake.user.id) == []
        assert not fake.calls("chat.postMessage")


async def test_a_channel_without_the_bot_gets_an_invite_hint(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running_slack(fake, tmp_path) as stack:
        request = fake.slash_command(text="a cat", channel_id=fake.random.id)
        assert (await stack.post(request)).status == 200
        note = await stack.ephemeral(fake.user.id, "/invite @bananabot")
        assert note["source"] == "response_url"
        assert await stack.all_jobs(fake.user.id) == []


async def test_the_image_block_falls_back_to_buttons_when_slack_keeps_refusing(
    tmp_path: Path,
) -> None:
    async with (
        FakeSlack(file_ready_delay=3600) as fake,
        running_slack(fake, tmp_path, image_retry_delays=(0.05, 0.05)) as stack,
    ):
        await stack.post(fake.slash_command(text="a stubborn upload"))
        message = await stack.result(fake.channel.id)
        assert "image" not in block_types(message)
        assert action_ids(message) == ["bb_vary", "bb_upscale", "bb_edit"]
        assert "the file is in the thread" in message["blocks"][1]["elements"][0]["text"]
        assert len(fake.uploaded) == 1 and fake.uploaded[0].thread_ts == message["ts"]


async def test_socket_mode_imagine(fake: FakeSlack, tmp_path: Path) -> None:
    async with running_slack(fake, tmp_path, socket=True) as stack:
        payload = fake.slash_command_payload(text="a red kite --n 2")
        envelope = await fake.socket_send("slash_commands", payload)
        ack = await fake.wait_socket_ack(envelope)
        assert ack.latency < 3.0 and ack.payload is not None
        assert ack.payload["text"].startswith("⏳ Queued: *a red kite*")
        assert acks_observed(stack, "slack") == 1
        message = await stack.result(fake.channel.id)
        [job] = await stack.jobs(fake.user.id)
        assert job.idempotency_key == f"slack:cmd:{payload['trigger_id']}"
        assert button_values(message) == [f"{job.id}:0"] * 3 + [f"{job.id}:1"] * 3
        assert [e["text"]["text"] for b in message["blocks"] if b["type"] == "actions"
                for e in b["elements"]] == [
            "Vary 1", "Upscale 4K 1", "Edit 1", "Vary 2", "Upscale 4K 2", "Edit 2",
        ]  # fmt: skip
        assert len(fake.uploaded) == 2

        # Socket Mode marks every event with a retry number; the event id dedupes.
        mention = fake.app_mention("a paper boat", channel=fake.channel.id)
        first = await fake.socket_send("events_api", fake.event_payload(mention, event_id="Ev1"))
        retry = await fake.socket_send(
            "events_api",
            fake.event_payload(mention, event_id="Ev1"),
            retry_attempt=1,
            retry_reason="timeout",
        )
        await fake.wait_socket_ack(first)
        await fake.wait_socket_ack(retry)
        await stack.jobs(fake.user.id, count=2)
        await stack.adapter.idle()
        assert len(await stack.all_jobs(fake.user.id)) == 2
