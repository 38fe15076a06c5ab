"""The Discord adapter end to end: fake Discord, real discord.py, real core, sandbox/Runware.

Every test starts the whole stack in this process (see ``tests/test_discord_harness.py``).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)
from bot.models import JobAction, JobStatus
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_rules import MESSAGE_FLAG_LOADING
from tests.fakes.runware import NSFW_MARKER, SAFETY_BLOCK_MARKER, RunwareEmulator
from tests.test_discord_harness import (
    Bot,
    body_of,
    custom_ids,
    original_patches,
    png,
    running_bot,
)

pytestmark = pytest.mark.timeout(45)

EPHEMERAL = 1 << 6


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


@pytest.fixture
async def runware() -> AsyncIterator[RunwareEmulator]:
    async with RunwareEmulator(api_key="test-key") as emulator:
        yield emulator


def runware_settings(emulator: RunwareEmulator) -> dict[str, object]:
    return {
        "runware_api_key": "test-key",
        "runware_api_url": emulator.base_url,
        "providers": ["runware"],
    }


def job_of(message: dict[str, object]) -> str:
    """The job id named by a result message's buttons."""
    ids = custom_ids(message.get("components", []))  # type: ignore[arg-type]
    assert ids, message
    return ids[0].split(":")[2]


async def click(bot: Bot, custom_id: str, message: dict[str, object], **kwargs: object) -> dict:
    return await bot.send(bot.fake.component_click(custom_id, message, **kwargs))  # type: ignore[arg-type]


# --- /imagine -----------------------------------------------------------------------------


async def test_imagine_with_two_references_defers_then_posts_image_and_buttons(
    fake: FakeDiscord, runware: RunwareEmulator, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, **runware_settings(runware)) as bot:
        refs = {
            "ref1": fake.add_attachment(png(64, 48), "cat.png", "image/png"),
            "ref2": fake.add_attachment(png(48, 64, (0, 90, 200)), "sofa.png", "image/png"),
        }
        payload = await bot.imagine({"prompt": "the cat on the sofa", **refs})

        [callback] = fake.callbacks_for(payload["id"])
        assert callback.type == 5 and callback.accepted
        assert callback.latency is not None and callback.latency < 3.0

        message = await bot.result_of(payload["id"])
        final = original_patches(fake, payload)[-1]
        assert final.is_multipart and len(final.files) == 1
        body = body_of(final)
        job_id = job_of(message)
        assert custom_ids(body["components"]) == [
            f"bb:vary:{job_id}:0",
            f"bb:upscale:{job_id}:0",
            f"bb:edit:{job_id}:0",
        ]
        assert body["allowed_mentions"] == {"parse": []}
        assert "the cat on the sofa" in body["content"] and "Nano Banana 2" in body["content"]
        assert "seed" in body["content"] and "$" in body["content"]

        [task] = runware.tasks.values()
        assert len(task["inputs"]["referenceImages"]) == 2
        job, _images = await bot.service.job(job_id)
        assert job.status is JobStatus.SUCCEEDED and len(job.request.references) == 2
        assert job.idempotency_key == f"discord:{payload['id']}"
        assert job.origin.workspace_id == str(fake.guild.id)
        assert job.origin.user_id == str(fake.member.id)


async def test_invalid_size_is_refused_ephemerally_before_deferring(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:
        payload = await bot.imagine(
            {"prompt": "a lighthouse", "model": "nano-banana-pro", "resolution": "0.5K"}
        )
        [callback] = fake.callbacks_for(payload["id"])
        assert callback.type == 4 and callback.data["flags"] == EPHEMERAL
        text = callback.data["content"]
        assert "Nano Banana Pro has no 0.5K resolution" in text and "Allowed: 1K, 2K, 4K" in text

        notes = fake.add_attachment(b"hello", "notes.txt", "text/plain")
        payload = await bot.imagine({"prompt": "a lighthouse", "ref1": notes})
        [callback] = fake.callbacks_for(payload["id"])
        assert callback.type == 4 and callback.data["flags"] == EPHEMERAL
        assert "notes.txt is not a PNG, JPEG, WebP or GIF image" in callback.data["content"]


async def test_progress_shows_queue_position_then_the_result_never_goes_back(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(
        fake, tmp_path, sandbox_delay=0.8, progress_interval=0.3, concurrency=1
    ) as bot:
        await bot.imagine({"prompt": "the first banana"})  # keeps the only worker busy
        payload = await bot.imagine({"prompt": "a slow banana"})
        await bot.result_of(payload["id"])
        contents = [body_of(r).get("content", "") for r in original_patches(fake, payload)]
        assert "⏳ Queued — position " in contents[0]
        assert any("Generating with Nano Banana 2" in c for c in contents)
        assert "Cost" in contents[-1]
        kinds = [
            "queued" if "Queued" in c else "generating" if "Generating" in c else "done"
            for c in contents
        ]
        assert kinds == sorted(kinds, key=["queued", "generating", "done"].index)
        patches = original_patches(fake, payload)
        progress_times = [r.at for r, k in zip(patches, kinds, strict=True) if k != "done"]
        assert all(b - a >= 0.29 for a, b in itertools.pairwise(progress_times))


# --- buttons and modals ---------------------------------------------------------------------


async def test_vary_upscale_and_edit_create_child_jobs(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running_bot(fake, tmp_path) as bot:
        payload = await bot.imagine({"prompt": "a red fox", "aspect_ratio": "16:9", "seed": 42})
        result = await bot.result_of(payload["id"])
        parent_id = job_of(result)
        _parent, [image] = await bot.service.job(parent_id)

        vary = await click(bot, f"bb:vary:{parent_id}:0", result, user=fake.admin)
        assert fake.callbacks_for(vary["id"])[0].type == 5  # a new message for the variation
        child = await bot.service.job(job_of(await bot.result_of(vary["id"])))
        assert child[0].action is JobAction.VARY and child[0].parent_job_id == parent_id
        assert child[0].request.seed not in (None, image.seed)
        assert child[0].request.prompt == "a red fox" and child[0].origin.user_id == str(
            fake.admin.id
        )

        upscale = await click(bot, f"bb:upscale:{parent_id}:0", result)
        up = await bot.service.job(job_of(await bot.result_of(upscale["id"])))
        assert up[0].action is JobAction.UPSCALE and up[0].request.resolution == "4K"
        assert up[0].request.aspect_ratio == "16:9" and len(up[0].request.references) == 1
        assert (up[1][0].width, up[1][0].height) == (5504, 3072)
        up_message = await bot.result_of(upscale["id"])
        assert not any(":upscale:" in c for c in custom_ids(up_message["components"]))

        edit = await click(bot, f"bb:edit:{parent_id}:0", result)
        [modal] = fake.callbacks_for(edit["id"])
        assert modal.type == 9 and modal.data["custom_id"] == f"bb:editmodal:{parent_id}:0"
        submit = await bot.send(
            fake.modal_submit(f"bb:editmodal:{parent_id}:0", {"instruction": "make it blue"})
        )
        assert fake.callbacks_for(submit["id"])[0].type == 5
        edited = await bot.service.job(job_of(await bot.result_of(submit["id"])))
        assert edited[0].action is JobAction.EDIT and edited[0].request.prompt == "make it blue"
        assert len(edited[0].request.references) == 1 and edited[0].parent_index == 0


async def test_buttons_and_edit_modal_work_after_a_restart(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:
        payload = await bot.imagine({"prompt": "a lighthouse at dusk"})
        result = await bot.result_of(payload["id"])
        job_id = job_of(result)
        edit = await click(bot, f"bb:edit:{job_id}:0", result)
        assert fake.callbacks_for(edit["id"])[0].type == 9  # the modal is open in the client
    await fake.wait_disconnected()

    async with running_bot(fake, tmp_path) as bot:  # a new process: same database and media
        assert len(fake.identifies) == 2
        vary = await click(bot, f"bb:vary:{job_id}:0", result)
        child = await bot.service.job(job_of(await bot.result_of(vary["id"])))
        assert child[0].parent_job_id == job_id and child[0].status is JobStatus.SUCCEEDED

        submit = await bot.send(
            fake.modal_submit(f"bb:editmodal:{job_id}:0", {"instruction": "add a moon"})
        )
        edited = await bot.service.job(job_of(await bot.result_of(submit["id"])))
        assert edited[0].request.prompt == "add a moon" and edited[0].parent_job_id == job_id


async def test_a_job_running_during_a_restart_is_delivered_by_the_next_process(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, sandbox_delay=30) as bot:
        payload = await bot.imagine({"prompt": "a banana that outlives its bot"})
        job_id = await bot.latest_job_id(fake.member.id)
        async with asyncio.timeout(10):
            while (await bot.service.job(job_id))[0].status is not JobStatus.RUNNING:
                await asyncio.sleep(0.02)
    async with running_bot(fake, tmp_path) as bot:  # resumes the job, answers the same token
        message = await bot.result_of(payload["id"])
        assert job_of(message) == job_id and len(message["attachments"]) == 1


# --- files and token lifetime ---------------------------------------------------------------


@cache
def noise_png() -> bytes:
    """A 2048x2048 PNG of random pixels: about 12 MiB, and PNG cannot shrink it."""
    image = Image.frombytes("RGB", (2048, 2048), os.urandom(2048 * 2048 * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@dataclass
class CannedProvider:
    """Answers every job with the images ``make`` returns (whatever was asked)."""

    name: str
    make: Callable[[], tuple[GeneratedImage, ...]]
    capabilities: ProviderCapabilities = field(
        default_factory=lambda: ProviderCapabilities(
            models=frozenset({"nano-banana-pro", "nano-banana-2"}), reports_cost=False
        )
    )

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        await on_task_id(str(uuid.uuid4()))
        return await self.resume(task, "")

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        return GenerationResult(images=self.make())


def noise_provider() -> CannedProvider:
    """Answers every job with :func:`noise_png`."""
    return CannedProvider("noise", lambda: (GeneratedImage(data=noise_png(), seed=7),))


def six_provider() -> CannedProvider:
    """Answers every job with six small PNGs (two messages: 5 images, then 1)."""
    return CannedProvider(
        "six",
        lambda: tuple(
            GeneratedImage(data=png(64, 64, (40 * n, 20, 200)), seed=n) for n in range(6)
        ),
    )


async def test_a_12_mib_png_is_reencoded_under_the_10_mib_limit(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    big = noise_png()
    assert len(big) > 12 * 1024 * 1024
    async with running_bot(fake, tmp_path, custom_providers={"noise": noise_provider()}) as bot:
        payload = await bot.imagine({"prompt": "static", "resolution": "2K", "aspect_ratio": "1:1"})
        await bot.result_of(payload["id"])
        final = original_patches(fake, payload)[-1]
        [upload] = final.files
        assert len(upload.data) <= 10 * 1024 * 1024 and final.status == 200
        with Image.open(io.BytesIO(upload.data)) as image:
            assert image.size == (2048, 2048) and image.format in ("JPEG", "WEBP")
        assert upload.filename.endswith((".jpg", ".webp"))
        assert "re-encoded" in body_of(final)["content"]


async def test_a_job_that_outlives_the_token_is_posted_in_the_channel(tmp_path: Path) -> None:
    async with (
        FakeDiscord(token_lifetime=1.0) as fake,
        running_bot(fake, tmp_path, sandbox_delay=1.5, discord_token_lifetime=1.0) as bot,
    ):
        payload = await bot.imagine({"prompt": "a very slow banana"})

        def posted() -> bool:
            return any(
                r.method == "POST" and r.path == f"/channels/{fake.channel.id}/messages"
                for r in fake.requests
            )

        await fake.wait_until(posted, 15, "a channel message")
        request = next(
            r
            for r in fake.requests
            if r.method == "POST" and r.path == f"/channels/{fake.channel.id}/messages"
        )
        body = body_of(request)
        assert body["content"].startswith(f"<@{fake.member.id}> ")
        assert body["allowed_mentions"] == {"parse": [], "users": [fake.member.id]}
        assert len(request.files) == 1 and len(custom_ids(body["components"])) == 3
        # Nothing tried the dead token for the result.
        assert not [r for r in original_patches(fake, payload) if r.status == 401]

        # Its buttons work like any other result's.
        message = request.response
        job_id = job_of(message)
        vary = await click(bot, f"bb:vary:{job_id}:0", message)
        assert fake.callbacks_for(vary["id"])[0].type == 5


@pytest.mark.parametrize(
    ("status", "code"),
    [(413, 40005), (401, 50027)],  # an upload refused; the token dead (invalid webhook token)
)
async def test_a_failed_followup_posts_only_the_rest_in_the_channel(
    fake: FakeDiscord, tmp_path: Path, status: int, code: int
) -> None:
    async with running_bot(fake, tmp_path, custom_providers={"six": six_provider()}) as bot:
        fake.inject_fault(r"^/webhooks/\d+/[^/]+$", method="POST", status=status, code=code)
        payload = await bot.imagine({"prompt": "six bananas"})
        channel_path = f"/channels/{fake.channel.id}/messages"

        def posted() -> bool:
            return any(r.method == "POST" and r.path == channel_path for r in fake.requests)

        await fake.wait_until(posted, 15, "the rest in the channel")
        await asyncio.sleep(0.3)  # anything posted twice, or a tidy, would arrive by now
        refused = [r for r in fake.requests if r.method == "POST" and r.status == status]
        assert len(refused) == 1 and refused[0].path.startswith("/webhooks/")

        delivered = [
            part.filename
            for r in fake.requests
            if r.method in ("POST", "PATCH") and 200 <= r.status < 300
            for part in r.files
        ]
        job_id = await bot.latest_job_id(fake.member.id)
        assert sorted(delivered) == [f"{job_id}-{n}.png" for n in range(1, 7)]

        # The original keeps its result (5 images and their buttons), untouched by a tidy.
        original = fake.original_message(payload["id"])
        assert original is not None and len(original["attachments"]) == 5
        assert len(custom_ids(original["components"])) == 15
        assert "see below" not in original["content"] and "six bananas" in original["content"]
        [rest] = [r for r in fake.requests if r.method == "POST" and r.path == channel_path]
        assert "(continued)" in body_of(rest)["content"] and len(rest.files) == 1


# --- refusals -------------------------------------------------------------------------------


async def test_over_budget_is_refused_privately_and_charges_nothing(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    from bot.budgets import BudgetCap, CapScope, Period
    from bot.service import utcnow

    async with running_bot(fake, tmp_path) as bot:
        cap = BudgetCap(
            scope=CapScope.USER,
            workspace_id=str(fake.guild.id),
            scope_id=str(fake.member.id),
            period=Period.DAY,
            limit_micros=10_000,
        )
        await bot.store.set_cap(cap, utcnow())
        payload = await bot.imagine({"prompt": "an expensive banana"})

        await fake.wait_until(lambda: bool(fake.followups(payload["id"])), 10, "a followup")
        [followup] = fake.followups(payload["id"])
        assert followup["flags"] & EPHEMERAL
        assert "Over budget: your daily cap is $0.01" in followup["content"]
        assert "Nothing was charged" in followup["content"]
        await fake.wait_until(lambda: fake.original_message(payload["id"]) is None, 5, "deletion")
        [usage] = await bot.service.budget(await _origin(bot, fake.member.id))
        assert usage.spent_micros == 0 and usage.held_micros == 0
        assert await bot.service.recent(await _origin(bot, fake.member.id)) == []


async def test_an_unexpected_error_after_the_defer_is_refused_privately(
    fake: FakeDiscord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom: a bug, with a secret-looking detail")

    async with running_bot(fake, tmp_path) as bot:
        monkeypatch.setattr(bot.service, "submit", broken)
        payload = await bot.imagine({"prompt": "a banana that hits a bug"})
        await fake.wait_until(lambda: bool(fake.followups(payload["id"])), 10, "a followup")
        [private] = fake.followups(payload["id"])
        assert private["flags"] & EPHEMERAL
        assert private["content"] == (
            "⚠️ Something went wrong inside bananabot; you were not charged."
        )
        # The public "thinking…" placeholder is gone, not left loading for ever.
        await fake.wait_until(lambda: fake.original_message(payload["id"]) is None, 5, "delete")
        [record] = [r for r in caplog.records if "failed after its defer" in r.getMessage()]
        assert record.exc_info is not None and "boom" in str(record.exc_info[1])

        # A command error that reaches the tree's handler edits the loading message (a
        # followup would do the same, ignoring ephemeral) instead of leaving it "thinking…".
        monkeypatch.setattr(bot.service, "job", broken)
        shown = await bot.send(fake.slash_command("show", {"job": "anything"}))

        def answered() -> bool:
            message = fake.original_message(shown["id"])
            return bool(message and "Something went wrong" in (message.get("content") or ""))

        await fake.wait_until(answered, 10, "the edited response")
        original = fake.original_message(shown["id"])
        assert original is not None and not original["flags"] & MESSAGE_FLAG_LOADING
        assert "boom" not in original["content"] and fake.followups(shown["id"]) == []
        # By "Edit Original", not the deprecated first-followup-edits-the-original path.
        webhook = f"/webhooks/{fake.application_id}/{shown['token']}"
        assert not [r for r in fake.requests if r.method == "POST" and r.path == webhook]
        assert original_patches(fake, shown)


async def _origin(bot: Bot, user_id: int):  # type: ignore[no-untyped-def]
    from bot.models import Origin

    return Origin(
        platform="discord",
        workspace_id=str(bot.fake.guild.id),
        channel_id=str(bot.fake.channel.id),
        user_id=str(user_id),
    )


async def test_policy_refusal_and_safety_clamp_are_explained(
    fake: FakeDiscord, runware: RunwareEmulator, tmp_path: Path
) -> None:
    from bot.policy import ChannelPolicy
    from bot.service import utcnow

    async with running_bot(fake, tmp_path, **runware_settings(runware)) as bot:
        # An NSFW-flagged result in a channel that is not age-restricted is withheld.
        payload = await bot.imagine({"prompt": f"a portrait {NSFW_MARKER}"})
        await fake.wait_until(
            lambda: "NSFW" in ((fake.original_message(payload["id"]) or {}).get("content") or ""),
            15,
            "the withheld result",
        )
        message = fake.original_message(payload["id"])
        assert message is not None and message["attachments"] == []
        assert message["components"] == []
        job_id = (await bot.service.recent(await _origin(bot, fake.member.id)))[0].id
        spent_before = (
            await bot.service.usage_report(
                await _origin(bot, fake.member.id), __import__("bot.budgets").budgets.Period.DAY
            )
        ).own_spent_micros

        # A stale Edit modal on it is refused by policy, privately, and charges nothing.
        submit = await bot.send(
            fake.modal_submit(f"bb:editmodal:{job_id}:0", {"instruction": "x y z"})
        )
        await fake.wait_until(lambda: bool(fake.followups(submit["id"])), 10, "a followup")
        [followup] = fake.followups(submit["id"])
        assert followup["flags"] & EPHEMERAL and "withheld as NSFW" in followup["content"]
        report = await bot.service.usage_report(
            await _origin(bot, fake.member.id), __import__("bot.budgets").budgets.Period.DAY
        )
        assert report.own_spent_micros == spent_before and report.own_held_micros == 0

        # A safety tolerance above the channel's policy is clamped, and the person told.
        await bot.store.set_policy(
            str(fake.guild.id), str(fake.channel.id), ChannelPolicy(max_tolerance="low"), utcnow()
        )
        payload = await bot.imagine({"prompt": "a calm lake", "safety": "off"})
        message = await bot.result_of(payload["id"])
        assert "used 'low' instead" in message["content"]
        last = list(runware.tasks.values())[-1]
        assert last["providerSettings"]["google"]["safetyTolerance"] == "low"


async def test_provider_safety_block_and_outage_are_explained_and_refunded(
    fake: FakeDiscord, runware: RunwareEmulator, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path, **runware_settings(runware)) as bot:
        payload = await bot.imagine({"prompt": f"something {SAFETY_BLOCK_MARKER}"})
        await fake.wait_until(lambda: bool(fake.followups(payload["id"])), 15, "a followup")
        [private] = fake.followups(payload["id"])
        assert private["flags"] & EPHEMERAL
        assert "safety filter blocked" in private["content"] and "not charged" in private["content"]
        public = fake.original_message(payload["id"])
        assert public is not None and "could not be made" in public["content"]
        assert "filter" not in public["content"]  # the details stay private

        runware.fail_next(500, count=10, retry_after=0.01)
        payload = await bot.imagine({"prompt": "a banana during an outage"})
        await fake.wait_until(lambda: bool(fake.followups(payload["id"])), 15, "a followup")
        [private] = fake.followups(payload["id"])
        assert "down or overloaded" in private["content"] and "not charged" in private["content"]
        report = await bot.service.usage_report(
            await _origin(bot, fake.member.id), __import__("bot.budgets").budgets.Period.DAY
        )
        assert report.own_spent_micros == 0 and report.own_held_micros == 0
