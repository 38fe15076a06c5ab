"""The real slack-sdk (3.47) and slack-bolt (1.30) against :class:`tests.fakes.slack.FakeSlack`.

The first half drives ``AsyncWebClient`` directly (Web API, ``files_upload_v2``, image
blocks, modals, ``url_private``, ``response_url``); the second half runs a small bolt
``AsyncApp`` in HTTP mode (``app.web_app()`` on port 0, signed requests from the fake)
and in Socket Mode (``AsyncSocketModeHandler``, reconnects and restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import FakeSlack, SignedRequest

pytestmark = pytest.mark.timeout(60)


def _png(color: str = "yellow", size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
RESULT_PNG = _png("orange", (32, 32))


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


async def _error(coro: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


def _actions(job: str = "job-1") -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*a cat* · 16:9"}},
        {
            "type": "actions",
            "block_id": f"img:{job}",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"img_{name}",
                    "value": job,
                    "text": {"type": "plain_text", "text": label},
                }
                for name, label in (("vary", "Vary"), ("up4k", "Upscale to 4K"), ("edit", "Edit"))
            ],
        },
    ]


def _modal(job: str, title: str = "Edit image") -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "img_edit_modal",
        "private_metadata": json.dumps({"job": job}),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Apply"},
        "blocks": [
            {
                "type": "input",
                "block_id": "instr",
                "label": {"type": "plain_text", "text": "What should change?"},
                "element": {"type": "plain_text_input", "action_id": "v", "max_length": 1000},
            }
        ],
    }


# ======================================================================================
# Web API with AsyncWebClient
# ======================================================================================


async def test_auth_test_and_token_checks(fake: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp["ok"] is True
    assert (resp["team_id"], resp["user_id"], resp["bot_id"]) == (
        fake.team_id,
        fake.bot_user_id,
        fake.bot_id,
    )
    assert resp["url"].startswith("https://") and resp["team"] == fake.team_name
    assert "chat:write" in resp.headers["x-oauth-scopes"]

    rec = fake.calls("auth.test")[0]
    assert rec.headers["Authorization"] == f"Bearer {fake.bot_token}"
    assert rec.token == fake.bot_token and rec.status == 200

    bad = AsyncWebClient(token="xoxb-nope", base_url=fake.api_url)
    err = await _error(bad.auth_test())
    assert err.response.status_code == 200 and err.response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=fake.api_url)
    assert (await _error(anonymous.auth_test())).response["error"] == "not_authed"
    app_level = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    err = await _error(app_level.chat_postMessage(channel=fake.channel.id, text="x"))
    assert err.response["error"] == "not_allowed_token_type"
    err = await _error(client.api_call("nope.nothing"))
    assert err.response["error"] == "unknown_method"
    err = await _error(client.api_call("files.upload", data={"content": "x"}))
    assert err.response["error"] == "method_deprecated"


async def test_post_message_with_blocks_and_validation(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    resp = await client.chat_postMessage(
        channel=fake.channel.id, text="Image for: a cat", blocks=_actions()
    )
    assert resp["channel"] == fake.channel.id and resp["message"]["bot_id"] == fake.bot_id
    stored = fake.messages_in(fake.channel.id)
    assert [m["ts"] for m in stored] == [resp["ts"]]
    assert stored[0]["blocks"][1]["elements"][2]["action_id"] == "img_edit"
    assert all(b.get("block_id") for b in stored[0]["blocks"])  # Slack fills block_ids in
    sent = fake.calls("chat.postMessage")[0]
    assert sent.json["blocks"][1]["block_id"] == "img:job-1"  # slack-sdk sends JSON here

    long_label = _actions()
    long_label[1]["elements"][0]["text"]["text"] = "x" * 76
    err = await _error(
        client.chat_postMessage(channel=fake.channel.id, text="t", blocks=long_label)
    )
    assert err.response["error"] == "invalid_blocks"
    assert err.response["errors"] == [
        "must be less than 76 characters [json-pointer:/blocks/1/elements/0/text/text]"
    ]
    too_many = [{"type": "divider"}] * 51
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="t", blocks=too_many))
    assert "no more than 50 items allowed [json-pointer:/blocks]" in err.response["errors"]
    crowded = [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"b{i}",
                    "value": "v" * 2001 if i == 0 else "ok",
                    "text": {"type": "plain_text", "text": "B"},
                }
                for i in range(26)
            ],
        }
    ]
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="t", blocks=crowded))
    assert set(err.response["errors"]) == {
        "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
    }
    section = [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}]
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="t", blocks=section))
    assert err.response["error"] == "invalid_blocks"
    assert len(fake.messages_in(fake.channel.id)) == 1  # refused posts store nothing

    err = await _error(client.chat_postMessage(channel="C0MISSING", text="x"))
    assert err.response["error"] == "channel_not_found"
    err = await _error(client.chat_postMessage(channel=fake.random.id, text="x"))
    assert err.response["error"] == "not_in_channel"
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        err = await _error(client.chat_postMessage(channel=fake.channel.id))  # slack-sdk warns
    assert err.response["error"] == "no_text"

    # thread reply, update, ephemeral, permalink, reactions
    reply = await client.chat_postMessage(
        channel=fake.channel.id, thread_ts=resp["ts"], text="progress 10%"
    )
    await client.chat_update(channel=fake.channel.id, ts=reply["ts"], text="progress 90%")
    thread = fake.messages_in(fake.channel.id, thread_ts=resp["ts"])
    assert [m["text"] for m in thread] == ["Image for: a cat", "progress 90%"]
    assert thread[0]["reply_count"] == 1 and thread[1]["thread_ts"] == resp["ts"]
    eph = await client.chat_postEphemeral(
        channel=fake.channel.id, user=fake.user.id, text="⚠️ prompt too long"
    )
    assert eph["message_ts"]
    assert [e["text"] for e in fake.ephemeral_for(fake.user.id)] == ["⚠️ prompt too long"]
    err = await _error(
        client.chat_postEphemeral(channel=fake.private.id, user=fake.owner.id, text="x")
    )
    assert err.response["error"] == "user_not_in_channel"
    link = await client.chat_getPermalink(channel=fake.channel.id, message_ts=resp["ts"])
    assert resp["ts"].replace(".", "") in link["permalink"]
    await client.reactions_add(channel=fake.channel.id, timestamp=resp["ts"], name="hourglass")
    assert fake.message(fake.channel.id, resp["ts"])["reactions"][0]["users"] == [fake.bot_user_id]  # type: ignore[index]

    history = await client.conversations_history(channel=fake.channel.id)
    assert [m["ts"] for m in history["messages"]] == [resp["ts"]]  # replies stay in the thread


async def test_users_and_conversations_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    admin = (await client.users_info(user=fake.admin.id))["user"]
    assert admin["is_admin"] is True and admin["is_owner"] is False and admin["tz"]
    owner = (await client.users_info(user=fake.owner.id))["user"]
    assert owner["is_owner"] is True and owner["is_primary_owner"] is True
    assert (await _error(client.users_info(user="U0NOBODY"))).response["error"] == "user_not_found"

    private = (await client.conversations_info(channel=fake.private.id))["channel"]
    assert private["is_private"] is True and private["is_group"] is True
    dm = (await client.conversations_info(channel=fake.dm.id))["channel"]
    assert dm["is_im"] is True and dm["user"] == fake.user.id
    general = (await client.conversations_info(channel=fake.channel.id))["channel"]
    assert general["is_channel"] is True and general["is_member"] is True
    fake.scopes.discard("groups:read")
    err = await _error(client.conversations_info(channel=fake.private.id))
    assert err.response["error"] == "missing_scope" and err.response["needed"] == "groups:read"


async def test_files_upload_v2_lands_in_the_thread(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=fake.channel.id, text="generating…")
    resp = await client.files_upload_v2(
        file=RESULT_PNG,
        filename="result.png",
        title="a cat",
        alt_txt="a cat, 16:9",
        channel=fake.channel.id,
        thread_ts=parent["ts"],
        initial_comment="Here you go",
    )
    file_id = resp["file"]["id"]
    assert resp["files"][0]["title"] == "a cat"
    assert [r.method for r in fake.requests[1:]] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    get_url = fake.calls("files.getUploadURLExternal")[0]
    assert get_url.query["length"] == str(len(RESULT_PNG))  # params= travel in the query
    assert fake.calls("upload")[0].raw == RESULT_PNG
    complete = fake.calls("files.completeUploadExternal")[0]
    assert json.loads(complete.query["files"]) == [{"id": file_id, "title": "a cat"}]

    [up] = fake.uploaded
    assert (up.id, up.data, up.name, up.channel, up.thread_ts) == (
        file_id,
        RESULT_PNG,
        "result.png",
        fake.channel.id,
        parent["ts"],
    )
    assert up.initial_comment == "Here you go" and up.alt_txt == "a cat, 16:9"

    replies = await client.conversations_replies(channel=fake.channel.id, ts=parent["ts"])
    shared = replies["messages"][1]
    assert shared["files"][0]["id"] == file_id and shared["text"] == "Here you go"
    info = await client.files_info(file=file_id)
    share = info["file"]["shares"]["public"][fake.channel.id][0]
    assert share["thread_ts"] == parent["ts"] and share["ts"] == shared["ts"]

    async with (
        aiohttp.ClientSession() as http,
        http.get(
            info["file"]["url_private_download"],
            headers={"Authorization": f"Bearer {fake.bot_token}"},
        ) as r,
    ):
        assert r.status == 200 and r.content_type == "image/png"
        assert await r.read() == RESULT_PNG

    # An upload whose bytes never arrived cannot be completed.
    url = await client.files_getUploadURLExternal(filename="x.png", length=10)
    err = await _error(client.files_completeUploadExternal(files=[{"id": url["file_id"]}]))
    assert err.response["error"] == "file_not_found"
    err = await _error(client.files_getUploadURLExternal(filename="x.png", length=0))
    assert err.response["error"] == "missing_argument"


async def test_upload_share_can_lag_behind_the_call() -> None:
    async with FakeSlack(share_delay=0.3) as fake:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        parent = await client.chat_postMessage(channel=fake.channel.id, text="refs?")
        ref = fake.add_file(
            PNG, "ref.png", user=fake.user.id, channel=fake.channel.id, thread_ts=parent["ts"]
        )
        resp = await client.files_upload_v2(
            file=RESULT_PNG, filename="out.png", channel=fake.channel.id, thread_ts=parent["ts"]
        )
        assert "ts" not in resp  # no message ts comes back
        info = await client.files_info(file=resp["file"]["id"])
        assert "shares" not in info["file"]  # not shared yet
        msg = await fake.wait_for_message(fake.channel.id, lambda m: "files" in m and "bot_id" in m)
        info = await client.files_info(file=resp["file"]["id"])
        assert info["file"]["shares"]["public"][fake.channel.id][0]["ts"] == msg["ts"]
        replies = await client.conversations_replies(channel=fake.channel.id, ts=parent["ts"])
        assert [m.get("files", [{}])[0].get("id") for m in replies["messages"]] == [
            None,
            ref["id"],
            resp["file"]["id"],
        ]
        assert replies["messages"][1]["subtype"] == "file_share"


async def test_upload_url_checks_the_length(fake: FakeSlack, client: AsyncWebClient) -> None:
    url = await client.files_getUploadURLExternal(filename="a.png", length=len(PNG) + 1)
    async with aiohttp.ClientSession() as http:
        async with http.post(url["upload_url"], data=PNG) as r:
            assert r.status == 400 and "length_mismatch" in await r.text()
        form = aiohttp.FormData()
        form.add_field("file", PNG + b"!", filename="a.png", content_type="image/png")
        async with http.post(url["upload_url"], data=form) as r:  # multipart works too
            assert r.status == 200 and await r.text() == f"OK - {len(PNG) + 1}"
    assert fake.calls("upload")[1].files[0].filename == "a.png"

    fake.fail_next("upload", "upload failed", status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await client.files_upload_v2(content=b"hello", filename="a.txt", channel=fake.channel.id)


async def test_image_block_needs_the_upload_to_settle(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    # Uploaded without a channel, the file stays private to the bot: never displayable.
    private = await client.files_upload_v2(file=RESULT_PNG, filename="private.png")
    assert fake.uploaded[0].channel is None and not fake.messages_in(fake.channel.id)
    fake.advance_clock(fake.file_ready_delay)
    hidden = [{"type": "image", "slack_file": {"id": private["file"]["id"]}, "alt_text": "x"}]
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="x", blocks=hidden))
    assert err.response["error"] == "invalid_blocks"
    assert err.response["errors"][0].startswith("invalid slack file")
    assert err.response["errors"][0].endswith("[json-pointer:/blocks/0/slack_file]")

    up = await client.files_upload_v2(
        file=RESULT_PNG, filename="result.png", channel=fake.channel.id
    )
    blocks = [
        {"type": "image", "slack_file": {"id": up["file"]["id"]}, "alt_text": "a cat"},
        *_actions(),
    ]
    err = await _error(
        client.chat_postMessage(channel=fake.channel.id, text="a cat", blocks=blocks)
    )
    assert err.response["error"] == "invalid_blocks"
    assert err.response["errors"][0].endswith("[json-pointer:/blocks/0/slack_file]")

    fake.advance_clock(fake.file_ready_delay)
    ok = await client.chat_postMessage(channel=fake.channel.id, text="a cat", blocks=blocks)
    assert ok["message"]["blocks"][0]["slack_file"] == {"id": up["file"]["id"]}

    # Real time works too: retry with a short backoff, as the adapter should.
    second = await client.files_upload_v2(file=PNG, filename="again.png", channel=fake.channel.id)
    by_url = [
        {
            "type": "image",
            "slack_file": {"url": fake.files[second["file"]["id"]].url_private},
            "alt_text": "again",
        }
    ]
    attempts = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        attempts += 1
        try:
            await client.chat_postMessage(channel=fake.channel.id, text="again", blocks=by_url)
            break
        except SlackApiError as e:
            assert e.response["error"] == "invalid_blocks"
            await asyncio.sleep(0.2)
    assert attempts > 1 and loop.time() - start >= fake.file_ready_delay * 0.9

    text_file = await client.files_upload_v2(content="not an image", filename="notes.txt")
    fake.advance_clock(1)
    notes = [{"type": "image", "slack_file": {"id": text_file["file"]["id"]}, "alt_text": "x"}]
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="x", blocks=notes))
    assert err.response["error"] == "invalid_blocks"
    unknown = [{"type": "image", "slack_file": {"id": "F0NOPE"}, "alt_text": "x"}]
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="x", blocks=unknown))
    assert err.response["error"] == "invalid_blocks"


async def test_views_open_trigger_rules(fake: FakeSlack, client: AsyncWebClient) -> None:
    fresh = fake.slash_command_payload(text="edit")["trigger_id"]
    resp = await client.views_open(trigger_id=fresh, view=_modal("job-1"))
    assert resp["view"]["id"].startswith("V") and resp["view"]["callback_id"] == "img_edit_modal"
    assert [v["id"] for v in fake.views_opened] == [resp["view"]["id"]]
    assert fake.views_opened[0]["user_id"] == fake.user.id
    err = await _error(client.views_open(trigger_id=fresh, view=_modal("job-1")))
    assert err.response["error"] == "exchanged_trigger_id"

    old = fake.block_actions_payload("img_edit", "job-1")["trigger_id"]
    fake.advance_clock(3.1)
    err = await _error(client.views_open(trigger_id=old, view=_modal("job-1")))
    assert err.response["error"] == "expired_trigger_id"
    err = await _error(client.views_open(trigger_id="1.2.3", view=_modal("job-1")))
    assert err.response["error"] == "invalid_trigger_id"

    trigger = fake.issue_trigger(fake.user.id)
    err = await _error(client.views_open(trigger_id=trigger, view=_modal("j", "x" * 25)))
    assert err.response["error"] == "invalid_arguments"
    assert err.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
    ]
    big = _modal("j")
    big["private_metadata"] = "m" * 3001
    big["blocks"] = [{"type": "divider"}] * 101
    err = await _error(client.views_open(trigger_id=trigger, view=big))
    assert len(err.response["response_metadata"]["messages"]) == 2
    resp = await client.views_open(trigger_id=trigger, view=_modal("j"))  # not used up by errors
    updated = await client.views_update(
        view_id=resp["view"]["id"], hash=resp["view"]["hash"], view=_modal("j", "Working…")
    )
    assert updated["view"]["title"]["text"] == "Working…" and len(fake.views_updated) == 1
    err = await _error(
        client.views_update(view_id=resp["view"]["id"], hash="stale", view=_modal("j"))
    )
    assert err.response["error"] == "hash_conflict"


async def test_url_private_needs_token_and_files_read(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    ref = fake.add_file(PNG, "ref.png", "image/png", user=fake.user.id, channel=fake.channel.id)
    assert ref["url_private"].startswith(fake.base_url) and ref["size"] == len(PNG)
    assert fake.messages_in(fake.channel.id)[0]["files"][0]["id"] == ref["id"]

    async def fetch(url: str, token: str | None) -> tuple[int, str, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
            return r.status, r.content_type, await r.read()

    assert await fetch(ref["url_private"], fake.bot_token) == (200, "image/png", PNG)
    status, ctype, body = await fetch(ref["url_private_download"], None)
    assert (status, ctype) == (200, "text/html") and body.startswith(b"<!DOCTYPE html>")
    assert (await fetch(ref["url_private"], "xoxb-other"))[1] == "text/html"
    fake.scopes.discard("files:read")
    assert (await fetch(ref["url_private"], fake.bot_token))[:2] == (200, "text/html")
    err = await _error(client.files_info(file=ref["id"]))
    assert err.response["error"] == "missing_scope" and err.response["needed"] == "files:read"


async def test_response_url_usage_limit(fake: FakeSlack) -> None:
    payload = fake.slash_command_payload(text="a cat")
    hook = AsyncWebhookClient(payload["response_url"])
    statuses = []
    for i in range(5):
        kind = "in_channel" if i == 0 else "ephemeral"
        statuses.append((await hook.send(text=f"update {i}", response_type=kind)).status_code)
    sixth = await hook.send(text="one too many")
    assert statuses == [200] * 5 and (sixth.status_code, sixth.body) == (404, "used_url")
    assert [m["text"] for m in fake.messages_in(fake.channel.id)] == ["update 0"]
    assert [e["text"] for e in fake.ephemeral_for(fake.user.id)] == [
        f"update {i}" for i in range(1, 5)
    ]
    state = fake.response_url(payload["response_url"])
    assert state.uses == 5 and [p.status for p in state.posts][-1] == 404

    # replace_original does not replace a slash command's reply; it does replace a message.
    other = fake.slash_command_payload(text="x")["response_url"]
    fake.advance_clock(30 * 60 + 1)
    late = await AsyncWebhookClient(other).send(text="too late")
    assert (late.status_code, late.body) == (404, "expired_url")

    msg = fake.channel.id
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    posted = await client.chat_postMessage(channel=msg, text="Image", blocks=_actions())
    click = fake.block_actions_payload("img_vary", user=fake.user.id, channel=msg)
    assert click["message"]["ts"] == posted["ts"] and click["actions"][0]["value"] == "job-1"
    assert click["actions"][0]["block_id"] == "img:job-1"
    replaced = await AsyncWebhookClient(click["response_url"]).send(
        text="Varying…", replace_original=True
    )
    assert replaced.status_code == 200
    assert fake.message(msg, posted["ts"])["text"] == "Varying…"  # type: ignore[index]
    bad = await AsyncWebhookClient(click["response_url"]).send(text="x", blocks=[{"type": "nope"}])
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")


async def test_fault_injection_and_rate_limits(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=3)
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="x"))
    assert err.response.status_code == 429 and err.response.headers["retry-after"] == "3"
    fake.fail_next("chat.postMessage", "fatal_error")
    err = await _error(client.chat_postMessage(channel=fake.channel.id, text="x"))
    assert (err.response.status_code, err.response["error"]) == (200, "fatal_error")

    retrying = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    retrying.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=0)
    resp = await retrying.chat_postMessage(channel=fake.channel.id, text="after retry")
    assert resp["ok"] and [r.status for r in fake.calls("chat.postMessage")][-2:] == [429, 200]


# ======================================================================================
# A small bolt app (HTTP mode and Socket Mode)
# ======================================================================================


@dataclass
class Probe:
    events: list[tuple[str, Any]] = field(default_factory=list)

    def record(self, name: str, value: Any) -> None:
        self.events.append((name, value))

    def all(self, name: str) -> list[Any]:
        return [v for n, v in self.events if n == name]


def build_app(fake: FakeSlack, probe: Probe) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url),
        signing_secret=fake.signing_secret,
    )

    @app.command("/imagine")
    async def imagine(ack: Any, command: dict[str, Any], respond: Any, client: Any) -> None:
        prompt = command["text"].strip()
        if not prompt:
            await ack("Usage: `/imagine <prompt>`")
            return
        await ack(response_type="ephemeral", text=f":hourglass: queued: {prompt}")
        probe.record("command", command)
        await client.files_upload_v2(
            file=RESULT_PNG, filename="result.png", title=prompt, channel=command["channel_id"]
        )
        await respond(text=f"done: {prompt}")
        probe.record("done", prompt)

    @app.action("img_edit")
    async def on_edit(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()
        resp = await client.views_open(trigger_id=body["trigger_id"], view=_modal(action["value"]))
        probe.record("view", resp["view"])

    @app.view("img_edit_modal")
    async def on_submit(ack: Any, view: dict[str, Any]) -> None:
        text = view["state"]["values"]["instr"]["v"]["value"] or ""
        if len(text.strip()) < 3:
            await ack(response_action="errors", errors={"instr": "Too short"})
            return
        await ack()
        probe.record("submitted", (json.loads(view["private_metadata"]), text))

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], client: Any, request: Any) -> None:
        blobs = []
        async with aiohttp.ClientSession() as http:
            for f in event.get("files", []):
                headers = {"Authorization": f"Bearer {client.token}"}
                async with http.get(f["url_private_download"], headers=headers) as r:
                    blobs.append(await r.read())
        thread = event.get("thread_ts") or event["ts"]
        await client.chat_postMessage(channel=event["channel"], thread_ts=thread, text="on it")
        retry = request.headers.get("x-slack-retry-num", [None])[0]  # bolt: lists of values
        probe.record("mention", (event["text"], blobs, retry))

    return app


@contextlib.asynccontextmanager
async def serve(app: AsyncApp) -> AsyncIterator[str]:
    """Runs bolt's own aiohttp ``web.Application`` (``app.web_app()``) on 127.0.0.1:0."""
    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        await runner.cleanup()


async def test_signed_requests_verify_with_slack_sdk(fake: FakeSlack) -> None:
    body, headers = fake.slash_command("/imagine", "a cat")
    verifier = SignatureVerifier(fake.signing_secret)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(*fake.slash_command(bad_signature=True))
    assert not verifier.is_valid_request(*fake.slash_command(stale=True))
    req = fake.event_callback({"type": "app_mention"}, retry_num=1)
    assert req.headers["X-Slack-Retry-Num"] == "1" and req.kind == "events_api"
    assert req.payload["event"]["type"] == "app_mention"
    click = fake.block_actions("img_vary", "job-1")
    assert isinstance(click, SignedRequest) and click.payload["type"] == "block_actions"
    assert click.kind == "interactive" and body.startswith(b"token=")


async def test_bolt_http_mode_slash_command(fake: FakeSlack) -> None:
    probe = Probe()
    async with serve(build_app(fake, probe)) as url:
        resp = await fake.post_signed(url, fake.slash_command("/imagine", "a cat"))
        assert resp.status == 200 and resp.latency < 3
        assert resp.json() == {"text": ":hourglass: queued: a cat", "response_type": "ephemeral"}
        await fake.wait_for(lambda: probe.all("done"), 10, "the slash command to finish")
        # The ack (shown like Slack shows it) and respond() via the response_url.  Their order
        # varies: bolt polls for ack() every 10 ms, so the listener's next calls may overtake it.
        assert sorted((e["source"], e["text"]) for e in fake.ephemeral_for(fake.user.id)) == [
            ("ack", ":hourglass: queued: a cat"),
            ("response_url", "done: a cat"),
        ]
        assert fake.uploaded[0].channel == fake.channel.id and fake.uploaded[0].title == "a cat"
        assert len(fake.calls("auth.test")) == 1  # single-workspace authorize: once

        usage = await fake.post_signed(url, *fake.slash_command(text="  "))
        assert usage.status == 200 and usage.text == "Usage: `/imagine <prompt>`"

        forged = await fake.post_signed(url, fake.slash_command(text="x", bad_signature=True))
        stale = await fake.post_signed(url, fake.slash_command(text="x", stale=True))
        assert (forged.status, stale.status) == (401, 401)
        assert forged.json() == {"error": "invalid request"}
        assert len(probe.all("command")) == 1

        challenge = await fake.post_signed(url, fake.url_verification("c-123"))
        assert challenge.json() == {"challenge": "c-123"}


async def test_bolt_http_mode_button_modal_and_mention(fake: FakeSlack) -> None:
    probe = Probe()
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    posted = await client.chat_postMessage(channel=fake.channel.id, text="Image", blocks=_actions())
    async with serve(build_app(fake, probe)) as url:
        click = await fake.post_signed(url, fake.block_actions("img_edit", user=fake.admin.id))
        assert click.status == 200 and click.payload["message"]["ts"] == posted["ts"]
        view = await fake.wait_for(lambda: probe.all("view"), 5, "views.open")
        assert fake.views_opened[0]["user_id"] == fake.admin.id
        assert json.loads(view[0]["private_metadata"]) == {"job": "job-1"}

        short = fake.view_submission("img_edit_modal", {"instr": {"v": "x"}}, user=fake.admin.id)
        errors = await fake.post_signed(url, short)
        assert errors.json() == {"response_action": "errors", "errors": {"instr": "Too short"}}
        good = fake.view_submission("img_edit_modal", {"instr": {"v": "make it blue"}})
        assert (await fake.post_signed(url, good)).status == 200
        assert probe.all("submitted") == [({"job": "job-1"}, "make it blue")]

        ref = fake.add_file(PNG, "ref.png", user=fake.user.id)
        mention = fake.app_mention(
            "make it blue", channel=fake.channel.id, thread_ts=posted["ts"], files=[ref]
        )
        assert mention["text"].startswith(f"<@{fake.bot_user_id}>") and mention["files"]
        first = await fake.post_signed(url, fake.event_callback(mention, event_id="Ev1"))
        assert first.status == 200
        retry = await fake.post_signed(
            url, fake.event_callback(mention, event_id="Ev1", retry_num=1)
        )
        assert retry.status == 200
        await fake.wait_for(lambda: len(probe.all("mention")) == 2, 5, "both deliveries")
        (text, blobs, retry_num), (_, _, second_retry) = probe.all("mention")
        assert text == f"<@{fake.bot_user_id}> make it blue"
        assert blobs == [PNG] and retry_num is None and second_retry == "1"
        thread = fake.messages_in(fake.channel.id, thread_ts=posted["ts"])
        assert [m["text"] for m in thread][-2:] == ["on it", "on it"]
        assert thread[1]["files"][0]["id"] == ref["id"]  # the user's message with the file


# ======================================================================================
# Socket Mode
# ======================================================================================


@contextlib.asynccontextmanager
async def socket_app(
    fake: FakeSlack, probe: Probe, **kwargs: Any
) -> AsyncIterator[AsyncSocketModeHandler]:
    handler = AsyncSocketModeHandler(build_app(fake, probe), fake.app_token, **kwargs)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        yield handler
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def test_socket_mode_ack_and_restart(fake: FakeSlack) -> None:
    probe = Probe()
    async with socket_app(fake, probe):
        conn = await fake.wait_socket_connected()
        assert conn.sent[0]["type"] == "hello" and conn.sent[0]["num_connections"] == 1
        opened = fake.calls("apps.connections.open")[0]
        assert opened.headers["Authorization"] == f"Bearer {fake.app_token}"
        assert conn.query["ticket"] in fake.socket_tickets

        eid = await fake.socket_send("slash_commands", fake.slash_command_payload(text="a cat"))
        ack = await fake.wait_socket_ack(eid)
        assert ack.envelope_id == eid and ack.latency < 3
        assert ack.payload == {"text": ":hourglass: queued: a cat", "response_type": "ephemeral"}
        assert fake.envelopes[eid].accepts_response_payload is True
        await fake.wait_for(lambda: probe.all("done"), 10, "the command to finish")
        sources = sorted(e["source"] for e in fake.ephemeral_for(fake.user.id))
        assert sources == ["ack", "response_url"]
        assert any(p.startswith(b"sdk-ping-pong:") for p in conn.pings)  # first ping on connect

    await fake.wait_socket_disconnected()
    assert fake.socket_connections[0].closed

    # The bot restarts: a new handler asks for a new URL and connects again.
    async with socket_app(fake, probe):
        second = await fake.wait_socket_connected(count=2)
        assert second.index == 1 and len(fake.calls("apps.connections.open")) == 2
        click = fake.block_actions_payload("img_edit", "job-9")
        eid = await fake.socket_send("interactive", click)
        assert (await fake.wait_socket_ack(eid)).payload is None
        assert fake.envelopes[eid].connection == 1
        await fake.wait_for(lambda: probe.all("view"), 5, "views.open over Socket Mode")
        assert fake.views_opened[-1]["private_metadata"] == json.dumps({"job": "job-9"})

        # No listener -> bolt answers 404 internally and the adapter sends no ack at all.
        unhandled = await fake.socket_send("interactive", fake.block_actions_payload("img_vary"))
        with pytest.raises(TimeoutError):
            await fake.wait_socket_ack(unhandled, timeout=0.5)

        submit = fake.view_submission("img_edit_modal", {"instr": {"v": "no"}})
        eid = await fake.socket_send("interactive", submit)  # a SignedRequest is unwrapped
        ack = await fake.wait_socket_ack(eid)
        assert ack.payload == {"response_action": "errors", "errors": {"instr": "Too short"}}

        mention = fake.app_mention("hello", channel=fake.channel.id)
        first = await fake.socket_send("events_api", mention)  # a bare event gets wrapped
        sent = fake.socket_connections[1].sent[-1]
        assert (sent["retry_attempt"], sent["retry_reason"]) == (0, "")
        assert sent["payload"]["type"] == "event_callback"
        retry = await fake.socket_send(
            "events_api", mention, retry_attempt=1, retry_reason="timeout"
        )
        await fake.wait_socket_ack(first)
        await fake.wait_socket_ack(retry)
        await fake.wait_for(lambda: len(probe.all("mention")) == 2, 5, "the mention handler")
        # bolt turns retry_attempt into x-slack-retry-num even when it is 0.
        assert sorted(r for _, _, r in probe.all("mention")) == ["0", "1"]
    await fake.wait_socket_disconnected()


async def test_socket_mode_disconnect_message_and_drop(fake: FakeSlack) -> None:
    probe = Probe()
    async with socket_app(fake, probe):
        first = await fake.wait_socket_connected()
        await fake.socket_disconnect("refresh_requested")
        second = await fake.wait_socket_connected(count=2)
        await fake.wait_for(lambda: first.closed, 5, "the old socket to close")
        assert second.index == 1 and len(fake.calls("apps.connections.open")) == 2

        await fake.socket_ping(b"are-you-there")
        await fake.wait_for(lambda: b"are-you-there" in second.pongs, 5, "the pong")

        await fake.socket_drop(code=1011)
        third = await fake.wait_socket_connected(count=3, timeout=15)
        eid = await fake.socket_send("slash_commands", fake.slash_command_payload(text=""))
        ack = await fake.wait_socket_ack(eid)
        assert (
            ack.payload == {"text": "Usage: `/imagine <prompt>`"} and ack.connection == third.index
        )
    await fake.wait_socket_disconnected()


async def test_socket_mode_debug_reconnects() -> None:
    async with FakeSlack(debug_reconnects=True, debug_reconnect_after=0.3) as fake:
        probe = Probe()
        async with socket_app(fake, probe):
            first = await fake.wait_socket_connected()
            assert first.query["debug_reconnects"] == "true"
            await fake.wait_socket_connected(count=3, timeout=10)
            assert [m["type"] for m in first.sent] == ["hello", "disconnect"]
            assert first.sent[1]["reason"] == "refresh_requested"
        await fake.wait_socket_disconnected()
