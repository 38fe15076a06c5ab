"""Pure parts of the Discord adapter: custom ids, reply handles, requests, text, chunking,
and the delivery's ordering and throttling (with a recording poster, no network)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

import tests.fakes.discord  # noqa: F401  (imports discord.py without the audioop warning)
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.outgoing import Outgoing, Poster, Upload, compose
from adapters.discord.text import escape_text, header
from adapters.discord.translate import (
    ButtonRef,
    EditModalRef,
    ImagineModalRef,
    ReplyHandle,
    button_id,
    check_attachment,
    chunk,
    decode_handle,
    encode_handle,
    imagine_fields,
    mentions,
    modal_values,
    parse_button_id,
    parse_modal_id,
    prevalidate,
    ratio_choices,
    strip_mentions,
    token_alive,
)
from bot.catalog import default_catalog
from bot.errors import InvalidRequest, ReferenceImageError
from bot.models import (
    Done,
    Generating,
    ImageRequest,
    Job,
    JobAction,
    Origin,
    Queued,
    ResultImage,
)

pytestmark = pytest.mark.timeout(10)
CATALOG = default_catalog()
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def handle(**changes: Any) -> ReplyHandle:
    values: dict[str, Any] = {
        "application_id": 11,
        "token": "tok",
        "issued_at": 1000.0,
        "channel_id": 22,
        "user_id": 33,
        "guild_id": 44,
    }
    values.update(changes)
    return ReplyHandle(**values)


def job(job_id: str = "AbC-12_xyz90", action: JobAction = JobAction.IMAGINE, **request: Any) -> Job:
    return Job(
        id=job_id,
        origin=Origin(
            platform="discord",
            workspace_id="44",
            channel_id="22",
            user_id="33",
            reply_handle=encode_handle(handle()),
        ),
        request=ImageRequest(prompt=request.pop("prompt", "a cat"), **request),
        action=action,
        parent_index=0 if action is not JobAction.IMAGINE else None,
        provider="sandbox",
        estimate_micros=68_950,
        idempotency_key="discord:1",
        created_at=NOW,
        updated_at=NOW,
    )


def image(index: int, width: int = 1024, height: int = 1024, **extra: Any) -> ResultImage:
    return ResultImage(
        job_id="AbC-12_xyz90",
        index=index,
        media_key=f"{index:064x}.png",
        mime_type="image/png",
        width=width,
        height=height,
        seed=7 + index,
        cost_micros=68_950,
        **extra,
    )


def test_button_ids_round_trip_and_stay_short() -> None:
    long_job = "x" * 40
    custom_id = button_id(JobAction.UPSCALE, long_job, 19)
    assert custom_id == f"bb:upscale:{long_job}:19" and len(custom_id) <= 100
    assert parse_button_id(custom_id) == ButtonRef(JobAction.UPSCALE, long_job, 19)
    assert parse_button_id("bb:vary:abc:1:extra") is None
    assert parse_button_id("img:vary:abc") is None
    with pytest.raises(ValueError):
        button_id(JobAction.IMAGINE, "abc", 0)
    with pytest.raises(ValueError):
        button_id(JobAction.VARY, "has space", 0)


def test_modal_ids_and_values() -> None:
    assert parse_modal_id("bb:editmodal:AbC-1:2") == EditModalRef("AbC-1", 2)
    assert parse_modal_id("bb:imaginemodal:123456789") == ImagineModalRef(123456789)
    assert parse_modal_id("bb:imaginemodal:abc") is None
    labels = [{"type": 18, "component": {"type": 4, "custom_id": "instruction", "value": "blue"}}]
    rows = [{"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "a dog"}]}]
    assert modal_values(labels) == {"instruction": "blue"}
    assert modal_values(rows) == {"prompt": "a dog"}
    assert modal_values(["junk", {"type": 1}]) == {}


def test_reply_handle_is_compact_json_and_round_trips() -> None:
    original = handle(message_id=None, original_id=55)
    text = encode_handle(original)
    assert '"m"' not in text and '"t":"tok"' in text and len(text) < 200
    assert decode_handle(text) == original
    with pytest.raises(ValueError):
        decode_handle('{"session": "web"}')
    with pytest.raises(ValueError):
        decode_handle("not json")


def test_token_is_used_only_well_inside_its_lifetime() -> None:
    h = handle(issued_at=1000.0)
    assert token_alive(h, 1000.0 + 869, 900)
    assert not token_alive(h, 1000.0 + 871, 900)  # 30 s margin
    assert token_alive(h, 1000.8, 1.0) and not token_alive(h, 1000.95, 1.0)
    assert not token_alive(handle(token=None), 1000.0, 900)


def test_imagine_fields_and_checks_before_any_io() -> None:
    assert imagine_fields(prompt="x", model=None, count=2, aspect_ratio=" 16:9 ") == {
        "prompt": "x",
        "number_results": 2,
        "aspect_ratio": "16:9",
    }
    check_attachment("a.PNG", None, 10, 0)
    check_attachment("photo", "image/webp", 10, 0)
    with pytest.raises(ReferenceImageError, match="not a PNG"):
        check_attachment("a.txt", "text/plain", 10, 1)
    with pytest.raises(ReferenceImageError, match="limit is 20 MiB") as err:
        check_attachment("big.png", "image/png", 21 * 1024 * 1024, 2)
    assert err.value.index == 2

    prevalidate(CATALOG, imagine_fields(prompt="a cat", resolution="0.5K"), [(10, 10)])
    with pytest.raises(InvalidRequest) as bad:
        prevalidate(
            CATALOG, imagine_fields(prompt="a cat", model="nano-banana-pro", resolution="0.5K"), []
        )
    assert bad.value.field == "resolution" and bad.value.allowed == ("1K", "2K", "4K")
    with pytest.raises(InvalidRequest, match="at most 14 reference images"):
        prevalidate(CATALOG, imagine_fields(prompt="a cat"), [(1, 1)] * 15)
    with pytest.raises(InvalidRequest, match="4:1"):
        prevalidate(
            CATALOG, imagine_fields(prompt="a cat", model="nano-banana-pro", aspect_ratio="4:1"), []
        )


def test_aspect_ratio_suggestions_follow_the_model() -> None:
    pro = ratio_choices(CATALOG, "nano-banana-pro", None, "")
    nb2 = ratio_choices(CATALOG, "nano-banana-2", "0.5K", "")
    assert "4:1" not in pro and "4:1" in nb2 and len(nb2) <= 25
    assert ratio_choices(CATALOG, None, None, "16") == ["16:9", "9:16"]


def test_mentions_and_escaping() -> None:
    assert mentions("<@!5> draw", 5) and mentions("hey <@5>", 5) and not mentions("<@6>", 5)
    assert strip_mentions("<@5> a cat <@6>", 5) == "a cat <@6>"
    echoed = escape_text("**bold** @everyone <@6> " + "x" * 400)
    assert "\\*\\*bold\\*\\*" in echoed and "@everyone" not in echoed and "<@6>" not in echoed
    assert len(echoed) < 340 and echoed.endswith("…")
    assert header(job(action=JobAction.EDIT, prompt="make it blue")).startswith(
        "**Edit** of image 1: make it blue — <@33>"
    )


def test_results_are_chunked_five_images_a_message() -> None:
    images = [image(i) for i in range(12)]
    assert [len(group) for group in chunk(images)] == [5, 5, 2]
    uploads = [Upload(img, b"data", f"j-{img.index + 1}.png") for img in images]
    uploads[3] = Upload(images[3], None, "", "withheld", shown=False)
    messages = compose(CATALOG, job(), uploads, "Cost $0.83.")
    assert len(messages) == 3
    assert [len(m.files) for m in messages] == [4, 5, 2]
    assert [len(m.buttons) for m in messages] == [4, 5, 2]
    assert all(len(row) == 3 for m in messages for row in m.buttons)
    assert messages[0].buttons[0][0].label == "Vary 1" and "Cost $0.83." in messages[0].content
    assert "(continued)" in messages[1].content and "-# withheld" in messages[0].content
    four_k = compose(CATALOG, job(), [Upload(image(0, 4096, 4096), b"d", "a.png")], "")
    assert [b.label for b in four_k[0].buttons[0]] == ["Vary", "Edit"]


class RecordingPoster(Poster):
    """Records edits instead of calling Discord."""

    def __init__(self) -> None:
        super().__init__(client=None, clock=lambda: 1000.0)  # type: ignore[arg-type]
        self.sent: list[str] = []

    async def edit(
        self, handle: ReplyHandle, message: Outgoing, *, keep_files: bool = False
    ) -> None:
        await asyncio.sleep(0.01)
        self.sent.append(message.content.splitlines()[1])


async def test_delivery_throttles_progress_and_never_goes_backwards() -> None:
    poster = RecordingPoster()
    delivery = DiscordDelivery(
        poster=poster,
        catalog=CATALOG,
        media=None,  # type: ignore[arg-type]
        progress_interval=0.2,
        first_progress=0.0,
    )
    j = job()
    await delivery.on_update(Queued(job=j, position=3))
    await asyncio.sleep(0.05)  # sent at once; what follows waits for the interval
    await delivery.on_update(Queued(job=j, position=2))  # superseded before its turn
    await delivery.on_update(Generating(job=j, provider="sandbox"))
    await delivery.on_update(Queued(job=j, position=1))  # stale: ignored
    await asyncio.sleep(0.35)
    assert poster.sent == [
        "⏳ Queued — position 3 · estimate $0.06895",
        "🎨 Generating with Nano Banana 2…",
    ]

    async def done_posted(*args: Any, **kwargs: Any) -> None:
        poster.sent.append("done")

    delivery.post_result = done_posted  # type: ignore[method-assign]
    await delivery.on_update(Generating(job=j, provider="sandbox"))
    await delivery.on_update(Done(job=j, images=()))  # a result skips the throttle
    await asyncio.sleep(0.05)
    await delivery.on_update(Queued(job=j, position=1))  # after the result: ignored
    await asyncio.sleep(0.25)
    assert poster.sent[2:] == ["done"]
    await delivery.close()
