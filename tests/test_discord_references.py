"""More ways in: mention replies, "Imagine from this", ``/show``, NSFW channels and DMs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.models import JobStatus
from tests.fakes.discord import FakeDiscord, Intents
from tests.fakes.runware import NSFW_MARKER, RunwareEmulator
from tests.test_discord_e2e import EPHEMERAL, job_of, runware_settings
from tests.test_discord_harness import body_of, custom_ids, original_patches, png, running_bot

pytestmark = pytest.mark.timeout(45)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f


def _bot_messages(fake: FakeDiscord) -> list[dict]:  # type: ignore[type-arg]
    return [
        m
        for m in fake.messages_in(fake.channel.id)
        if m["author"]["id"] == str(fake.bot_user.id) and "interaction_metadata" not in m
    ]


async def test_mention_reply_uses_the_replied_images_and_its_own(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:  # no Message Content intent
        payload = await bot.imagine({"prompt": "a cat"})
        result = await bot.result_of(payload["id"])
        own = fake.add_attachment(png(32, 32), "hat.png", "image/png", ephemeral=False)

        # A reply ping alone ("thanks!") is not a request.
        await fake.send_message_create("thanks!", reply_to=result)
        reply = await fake.send_message_create(
            "give the cat this hat", reply_to=result, mention_bot=True, attachments=[own]
        )

        def done() -> bool:
            return any(m.get("components") for m in _bot_messages(fake))

        await fake.wait_until(done, 15, "the mention's result")
        [progress] = _bot_messages(fake)
        assert progress["message_reference"]["message_id"] == reply["id"]
        assert len(progress["attachments"]) == 1
        job, _ = await bot.service.job(job_of(progress))
        assert job.idempotency_key == f"discord:msg:{reply['id']}"
        assert job.request.prompt == "give the cat this hat"
        # The replied-to image first, then the reply's own attachment.
        assert [(r.width, r.height) for r in job.request.references] == [(1024, 1024), (32, 32)]
        assert job.status is JobStatus.SUCCEEDED
        jobs = await bot.service.recent(
            job.origin.model_copy(update={"user_id": str(fake.member.id)}), 10
        )
        assert len(jobs) == 2  # the /imagine and the mention; "thanks!" started nothing


@pytest.mark.parametrize("message_content", [False, True])
async def test_mention_reply_to_someone_elses_image_needs_message_content(
    fake: FakeDiscord, tmp_path: Path, message_content: bool
) -> None:
    async with running_bot(fake, tmp_path, message_content=message_content) as bot:
        photo = fake.add_attachment(png(40, 30), "photo.png", "image/png", ephemeral=False)
        theirs = await fake.send_message_create("my photo", author=fake.admin, attachments=[photo])
        await fake.send_message_create("make it a painting", reply_to=theirs, mention_bot=True)
        await fake.wait_until(
            lambda: any(m.get("components") for m in _bot_messages(fake)), 15, "a result"
        )
        job, _ = await bot.service.job(job_of(_bot_messages(fake)[0]))
        # Discord blanks other people's attachments for apps without the intent.
        assert len(job.request.references) == (1 if message_content else 0)
        assert bool(fake.identifies[-1]["intents"] & Intents.MESSAGE_CONTENT) is message_content


async def test_imagine_from_this_uses_every_image_on_the_message(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running_bot(fake, tmp_path) as bot:
        images = [
            fake.add_attachment(png(30, 20), "a.png", "image/png", ephemeral=False),
            fake.add_attachment(b"notes", "notes.txt", "text/plain", ephemeral=False),
            fake.add_attachment(png(20, 30, (9, 9, 9)), "b.png", "image/png", ephemeral=False),
        ]
        target = await fake.send_message_create(
            "two pictures", author=fake.admin, attachments=images
        )
        menu = await bot.send(fake.message_context_menu("Imagine from this", target))
        [modal] = fake.callbacks_for(menu["id"])
        assert modal.type == 9 and modal.data["custom_id"] == f"bb:imaginemodal:{target['id']}"

        submit = await bot.send(
            fake.modal_submit(f"bb:imaginemodal:{target['id']}", {"prompt": "blend them"})
        )
        assert fake.callbacks_for(submit["id"])[0].type == 5
        job, _ = await bot.service.job(job_of(await bot.result_of(submit["id"])))
        assert job.request.prompt == "blend them" and len(job.request.references) == 2

        plain = await fake.send_message_create("no pictures here", author=fake.admin)
        menu = await bot.send(fake.message_context_menu("Imagine from this", plain))
        [refused] = fake.callbacks_for(menu["id"])
        assert refused.type == 4 and refused.data["flags"] == EPHEMERAL


@pytest.mark.parametrize("portal_intent", [True, False])
async def test_imagine_from_this_modal_survives_a_restart(
    tmp_path: Path, portal_intent: bool
) -> None:
    intents = Intents.PRIVILEGED if portal_intent else Intents.GUILD_MEMBERS
    async with FakeDiscord(privileged_intents=intents) as fake:
        async with running_bot(fake, tmp_path) as bot:
            pic = fake.add_attachment(png(), "pic.png", "image/png", ephemeral=False)
            target = await fake.send_message_create("look", author=fake.admin, attachments=[pic])
            await bot.send(fake.message_context_menu("Imagine from this", target))
        async with running_bot(fake, tmp_path) as bot:
            submit = await bot.send(
                fake.modal_submit(f"bb:imaginemodal:{target['id']}", {"prompt": "a sequel"})
            )
            if portal_intent:  # the bot re-reads the message with its token
                job, _ = await bot.service.job(job_of(await bot.result_of(submit["id"])))
                assert len(job.request.references) == 1
            else:  # Discord blanks the attachments: the person is told what to do
                await fake.wait_until(lambda: bool(fake.followups(submit["id"])), 10, "refusal")
                [followup] = fake.followups(submit["id"])
                assert followup["flags"] & EPHEMERAL
                assert "Imagine from this" in followup["content"]
                await fake.wait_until(
                    lambda: fake.original_message(submit["id"]) is None, 5, "the placeholder gone"
                )


async def test_show_reposts_a_result_with_live_buttons_but_never_nsfw_in_sfw_channels(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        RunwareEmulator(api_key="test-key") as runware,
        running_bot(fake, tmp_path, **runware_settings(runware)) as bot,
    ):
        # In the age-restricted channel an NSFW-flagged result is posted, with buttons.
        payload = await bot.imagine(
            {"prompt": f"a figure study {NSFW_MARKER}"}, channel_id=fake.nsfw_channel.id
        )
        result = await bot.result_of(payload["id"])
        job_id = job_of(result)
        assert len(result["attachments"]) == 1

        # /show there re-posts it with buttons.
        again = await bot.send(
            fake.slash_command("show", {"job": job_id}, channel_id=fake.nsfw_channel.id)
        )
        shown = await bot.result_of(again["id"])
        assert len(shown["attachments"]) == 1 and f"bb:vary:{job_id}:0" in custom_ids(
            shown["components"]
        )

        # /show in a channel that is not age-restricted withholds it.
        sfw = await fake.send_interaction(fake.slash_command("show", {"job": job_id}))
        await fake.wait_until(
            lambda: "NSFW" in ((fake.original_message(sfw["id"]) or {}).get("content") or ""),
            10,
            "the withheld re-post",
        )
        final = original_patches(fake, sfw)[-1]
        assert final.files == [] and body_of(final)["components"] == []

        unknown = await bot.send(fake.slash_command("show", {"job": "nope-nope"}))
        await fake.wait_until(lambda: bool(fake.followups(unknown["id"])), 10, "refusal")
        assert "No job nope-nope." in fake.followups(unknown["id"])[0]["content"]
        await fake.wait_until(lambda: fake.original_message(unknown["id"]) is None, 5, "delete")


async def test_imagine_in_a_dm_uses_a_private_workspace(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running_bot(fake, tmp_path) as bot:
        payload = await bot.imagine({"prompt": "a quiet harbour"}, dm=True)
        job, _ = await bot.service.job(job_of(await bot.result_of(payload["id"])))
        assert job.origin.workspace_id == f"dm:{fake.member.id}"
        assert job.origin.channel_nsfw is False
