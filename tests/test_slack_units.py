"""Pure pieces of the Slack adapter (flags, ids, handles, Block Kit) and the file downloader
against a small local server (token only to Slack's hosts, redirects, size cap, HTML)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from adapters.slack.blocks import edit_modal, result_messages
from adapters.slack.files import FILES_READ_MISSING, SlackFiles
from adapters.slack.translate import (
    ActionRef,
    EditRef,
    ReplyHandle,
    action_value,
    decode_handle,
    edit_metadata,
    encode_handle,
    escape_mrkdwn,
    imagine_fields,
    mentions_bot,
    parse_action,
    parse_edit_metadata,
    result_ref,
    strip_mention,
)
from bot.catalog import default_catalog
from bot.errors import InvalidRequest, ReferenceImageError
from bot.models import ImageRequest, Job, JobAction, Origin, ResultImage
from tests.fakes.slack_rules import check_blocks, check_view
from tests.test_slack_harness import png

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("a cat", {"prompt": "a cat"}),
        (
            "a cat --ar 16:9 --n 2 --seed 7",
            {"prompt": "a cat", "aspect_ratio": "16:9", "number_results": 2, "seed": 7},
        ),
        ("--model pro a cat's hat", {"prompt": "a cat's hat", "model": "nano-banana-pro"}),
        ("a fox —res 2k", {"prompt": "a fox", "resolution": "2K"}),  # macOS smart dash
        (
            "a fox --res=.5k --model nb2",
            {"prompt": "a fox", "resolution": "0.5K", "model": "nano-banana-2"},
        ),
        ("storm --safety LOW", {"prompt": "storm", "safety_tolerance": "low"}),
        ("a sign saying -- stop", {"prompt": "a sign saying -- stop"}),
    ],
)
def test_flags_are_parsed_out_of_the_prompt(text: str, fields: dict[str, object]) -> None:
    assert imagine_fields(text) == fields


@pytest.mark.parametrize(
    ("text", "field", "allowed"),
    [
        ("a --style x", "flags", ("--model", "--ar", "--res", "--seed", "--n", "--safety")),
        ("a --ar", "aspect_ratio", ("--model", "--ar", "--res", "--seed", "--n", "--safety")),
        ("a --res 3K", "resolution", ("0.5K", "1K", "2K", "4K")),
        ("a --safety max", "safety_tolerance", ("low", "medium", "high", "none", "off")),
        ("a --n two", "number_results", ("1..20",)),
        ("a --model dalle", "model", ("pro", "nb2")),
        ("a --n 1 --n 2", "number_results", ()),
    ],
)
def test_bad_flags_name_the_flag_and_the_allowed_values(
    text: str, field: str, allowed: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidRequest) as info:
        imagine_fields(text)
    assert info.value.field == field and info.value.allowed == allowed


def test_button_values_modal_metadata_and_handles_round_trip() -> None:
    assert action_value("Ab_-9", 3) == "Ab_-9:3"
    assert parse_action("bb_upscale", "Ab_-9:3") == ActionRef(JobAction.UPSCALE, "Ab_-9", 3)
    assert parse_action("bb_vary", "../etc:1") is None
    assert parse_action("other", "Ab:1") is None
    ref = EditRef("job1", 0, "C123", "1700000000.000100")
    assert parse_edit_metadata(edit_metadata(ref)) == ref
    assert parse_edit_metadata(edit_metadata(EditRef("j", 1, "C1", None))) == EditRef(
        "j", 1, "C1", None
    )
    assert parse_edit_metadata("garbage") is None
    handle = ReplyHandle(
        channel="C1", user="U1", status_ts="1.2", response_url="https://hooks/x", response_at=10.0
    )
    assert decode_handle(encode_handle(handle)) == handle
    assert '"s":"1.2"' in encode_handle(handle) and "null" not in encode_handle(handle)
    assert handle.upload_thread == "1.2" and handle.response_alive(100.0)
    assert not handle.response_alive(10.0 + 1800)
    with pytest.raises(ValueError):
        decode_handle('{"channel_id": 1}')


def test_mentions_and_escaping() -> None:
    assert mentions_bot("hey <@UBOT> draw", "UBOT") and mentions_bot("<@UBOT|banana> x", "UBOT")
    assert not mentions_bot("hey <@UOTHER>", "UBOT") and not mentions_bot("x", "")
    assert strip_mention("<@UBOT> a cat <@UBOT|b>", "UBOT") == "a cat"
    assert escape_mrkdwn("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape_mrkdwn("x" * 400).endswith("…") and len(escape_mrkdwn("x" * 400)) == 300


def _job(count: int) -> Job:
    now = datetime.now(UTC)
    return Job(
        id="job1",
        origin=Origin(platform="slack", workspace_id="T", channel_id="C", user_id="U"),
        request=ImageRequest(prompt="<b>a cat</b>", number_results=count),
        provider="sandbox",
        estimate_micros=1,
        idempotency_key="k",
        created_at=now,
        updated_at=now,
    )


def _image(index: int, width: int = 1024, withheld: bool = False) -> ResultImage:
    return ResultImage(
        job_id="job1",
        index=index,
        media_key="k",
        mime_type="image/png",
        width=width,
        height=width,
        seed=index,
        withheld=withheld,
    )


def test_twenty_images_fit_slack_limits_and_withheld_ones_have_no_buttons() -> None:
    catalog = default_catalog()
    images = [_image(i, withheld=i == 3) for i in range(20)]
    messages = result_messages(catalog, _job(20), images, {i: f"F{i}" for i in range(20)}, "Cost")
    assert len(messages) == 2 and all(len(m.blocks) <= 50 for m in messages)
    for message in messages:
        assert not check_blocks(list(message.blocks), files=lambda ref: None)
    values = [
        e["value"]  # type: ignore[index]
        for m in messages
        for b in m.blocks
        if b["type"] == "actions"
        for e in b["elements"]  # type: ignore[attr-defined]
    ]
    assert "job1:3" not in values and len(values) == 19 * 3
    assert "&lt;b&gt;a cat&lt;/b&gt;" in str(messages[0].blocks[0])
    four_k = result_messages(catalog, _job(1), [_image(0, 4096)], {}, "Cost", with_images=False)
    assert "bb_upscale" not in str(four_k[0].blocks) and "image" not in str(four_k[0].blocks)
    assert result_ref(list(messages[0].blocks)) == ActionRef(JobAction.VARY, "job1", 0)
    assert not check_view(edit_modal(EditRef("job1", 0, "C1", None)))


# --- file downloads ----------------------------------------------------------------------


@pytest.fixture
async def files_server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []
    image = png()

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        name = request.match_info["name"]
        if name == "cat.png":
            return web.Response(body=image, content_type="image/png")
        if name == "login.png":
            return web.Response(
                text="<!DOCTYPE html><html>sign in</html>", content_type="text/html"
            )
        if name == "away.png":
            raise web.HTTPFound("http://localhost:1/steal")
        if name == "hop.png":
            raise web.HTTPFound("/f/cat.png")
        if name == "big.png":
            return web.Response(body=image + b"\0" * 5000, content_type="image/png")
        return web.Response(body=b"%PDF-1.7", content_type="image/png")

    app = web.Application()
    app.router.add_get("/f/{name}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_downloads_send_the_token_only_to_slack_and_explain_the_sign_in_page(
    files_server: tuple[str, list[web.Request]],
) -> None:
    host, seen = files_server
    async with aiohttp.ClientSession() as session:
        files = SlackFiles(session=session, token="xoxb-t", hosts={host}, max_bytes=2000)

        def obj(name: str, url: str | None = None) -> dict[str, object]:
            return {
                "name": name,
                "mimetype": "image/png",
                "url_private": url or f"http://{host}/f/{name}",
            }

        assert (await files.fetch(obj("cat.png"), 0)).startswith(b"\x89PNG")
        assert (await files.fetch(obj("hop.png"), 0)).startswith(b"\x89PNG")
        assert all(r.headers["Authorization"] == "Bearer xoxb-t" for r in seen)
        problems = {
            "login.png": FILES_READ_MISSING,
            "away.png": "away.png is not a file hosted by Slack",
            "big.png": "big.png is larger than the download limit",
            "fake.png": "fake.png is not a PNG, JPEG, WebP or GIF image",
        }
        for name, message in problems.items():
            with pytest.raises(ReferenceImageError) as info:
                await files.fetch(obj(name), 2)
            assert (info.value.message, info.value.index) == (message, 2)
        with pytest.raises(ReferenceImageError, match="not a file hosted by Slack"):
            await files.fetch(obj("cat.png", "http://evil.example/f/cat.png"), 0)
        with pytest.raises(ReferenceImageError, match=r"notes\.pdf is not a PNG"):
            await files.fetch({"name": "notes.pdf", "mimetype": "application/pdf"}, 0)
        count = len(seen)
        with pytest.raises(ReferenceImageError, match="MiB; the limit is"):
            await files.fetch({**obj("cat.png"), "size": 30 * 1024 * 1024}, 0)
        assert len(seen) == count  # refused before downloading
