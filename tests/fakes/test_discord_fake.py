"""The real discord.py client (2.7) against :class:`tests.fakes.discord.FakeDiscord`.

A small ``discord.Client`` with a ``CommandTree`` (``/imagine`` with an attachment option,
an "Edit image" message context menu), a ``DynamicItem`` button family and a modal logs in
with a fake token, connects to the fake gateway and answers interactions over the fake REST
API.  The last tests talk to the fake with plain aiohttp to pin its wire contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import warnings
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
from PIL import Image

from tests.fakes.discord import (  # first: it imports discord.py without the audioop warning
    FakeDiscord,
    Intents,
    Overwrite,
    Perm,
    RecordedRequest,
    pointed_at,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands
    from discord.webhook.async_ import async_context, interaction_response_params

pytestmark = pytest.mark.timeout(60)


def _png(color: str = "yellow", size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


T = TypeVar("T")
PNG = _png()
RESULT_PNG = _png("orange", (32, 32))
LABELS = {"vary": "Vary", "up4k": "Upscale to 4K", "edit": "Edit"}
STYLES = ["photo", "watercolor", "pixel art", "oil painting"]


# ======================================================================================
# The bot under test
# ======================================================================================


@dataclass
class Probe:
    """What the bot saw, for assertions; ``wait`` blocks until an event name shows up."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, name: str, value: Any) -> None:
        self.events.append((name, value))
        self.changed.set()

    def all(self, name: str) -> list[Any]:
        return [v for n, v in self.events if n == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while len(self.all(name)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.all(name)[count - 1]


class EditModal(discord.ui.Modal):
    def __init__(self, job: str) -> None:
        super().__init__(title="Edit image", custom_id=f"img:editmodal:{job}", timeout=900)
        self.job = job
        self.instruction: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
            label="What should change?",
            custom_id="instruction",
            max_length=1000,
            style=discord.TextStyle.paragraph,
        )
        self.add_item(self.instruction)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        probe: Probe = interaction.client.probe  # type: ignore[attr-defined]
        await interaction.response.defer(thinking=True)
        probe.record("modal_submit", (self.job, self.instruction.value, interaction))
        await interaction.followup.send(f"Editing {self.job}: {self.instruction.value}")


class ImageAction(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"img:(?P<act>vary|up4k|edit):(?P<job>[0-9a-z]{4,40})",
):
    def __init__(self, act: str, job: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=LABELS[act],
                custom_id=f"img:{act}:{job}",
                style=discord.ButtonStyle.secondary,
            )
        )
        self.act = act
        self.job = job

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ImageAction:
        return cls(match["act"], match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        probe: Probe = interaction.client.probe  # type: ignore[attr-defined]
        probe.record(f"button:{self.act}", (self.job, interaction))
        if self.act == "edit":
            await interaction.response.send_modal(EditModal(self.job))
        elif self.act == "up4k":
            await interaction.response.edit_message(
                content="Upscaled",
                attachments=[discord.File(io.BytesIO(RESULT_PNG), "up4k.png")],
                view=result_view(self.job),
            )
        else:
            await interaction.response.defer()


def result_view(job: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for act in LABELS:
        view.add_item(ImageAction(act, job))
    return view


class BananaTestBot(discord.Client):
    def __init__(self, *, intents: discord.Intents | None = None, auto_reply: bool = True) -> None:
        super().__init__(intents=intents or discord.Intents.default(), guild_ready_timeout=0.1)
        self.tree = app_commands.CommandTree(self)
        self.probe = Probe()
        self.auto_reply = auto_reply
        self._build_commands()

    def _build_commands(self) -> None:
        @self.tree.command(name="imagine", description="Generate an image")
        @app_commands.describe(prompt="What to draw", ref="Reference image", style="Art style")
        async def imagine(
            interaction: discord.Interaction,
            prompt: str,
            ref: discord.Attachment | None = None,
            style: str | None = None,
        ) -> None:
            if ref is not None and not (ref.content_type or "").startswith("image/"):
                self.probe.record("imagine_rejected", interaction)
                await interaction.response.send_message(
                    "References must be images.", ephemeral=True
                )
                return
            await interaction.response.defer(thinking=True)
            data = await ref.read() if ref is not None else None
            self.probe.record("imagine", (interaction, prompt, ref, data))
            if self.auto_reply:
                job = f"job{interaction.id}"
                await interaction.edit_original_response(
                    content=f"**{prompt}**",
                    attachments=[discord.File(io.BytesIO(RESULT_PNG), "result.png")],
                    view=result_view(job),
                )
                self.probe.record("imagine_done", interaction)

        @imagine.autocomplete("style")
        async def style_autocomplete(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            self.probe.record("autocomplete", current)
            return [
                app_commands.Choice(name=s, value=s) for s in STYLES if current.lower() in s.lower()
            ][:25]

        @self.tree.command(name="banana", description="Post a banana picture")
        async def banana(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(
                "banana!",
                file=discord.File(io.BytesIO(PNG), "banana.png"),
                view=result_view(f"ban{interaction.id}"),
            )

        @self.tree.context_menu(name="Edit image")
        async def edit_image(interaction: discord.Interaction, message: discord.Message) -> None:
            self.probe.record("edit_image", (interaction, message))
            await interaction.response.send_modal(EditModal(f"msg{message.id}"))

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ImageAction)

    async def on_message(self, message: discord.Message) -> None:
        self.probe.record("message", message)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, **kwargs: Any) -> AsyncIterator[BananaTestBot]:
    """Starts a bot against ``fake`` and waits for on_ready; closes it cleanly afterwards."""
    bot = BananaTestBot(**kwargs)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        async with asyncio.timeout(15):
            while not bot.is_ready():
                if task.done():
                    task.result()
                    raise AssertionError("client stopped before it became ready")
                await asyncio.sleep(0.01)
        yield bot
    finally:
        await bot.close()
        await task


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        with pointed_at(f):
            yield f


def must(value: T | None) -> T:
    assert value is not None
    return value


def _is_original_patch(r: RecordedRequest) -> bool:
    return r.method == "PATCH" and r.path.endswith("/messages/@original")


def _custom_ids(components: list[Any]) -> list[str]:
    out: list[str] = []
    for comp in components:
        if "custom_id" in comp:
            out.append(comp["custom_id"])
        out.extend(_custom_ids(comp.get("components", [])))
    return out


async def sync_guild(bot: BananaTestBot, fake: FakeDiscord) -> list[app_commands.AppCommand]:
    """The development pattern: copy the global commands to the test guild and sync it."""
    guild = discord.Object(fake.guild.id)
    bot.tree.copy_global_to(guild=guild)
    return await bot.tree.sync(guild=guild)


async def _imagine(fake: FakeDiscord, bot: BananaTestBot, **options: Any) -> dict[str, Any]:
    """Syncs, sends /imagine and waits for the bot to finish it; returns the payload."""
    if not fake.commands_for(fake.guild.id):
        await sync_guild(bot, fake)
    payload = await fake.send_interaction(
        fake.slash_command("imagine", {"prompt": "a banana", **options})
    )
    seen = len(bot.probe.all("imagine"))
    done = len(bot.probe.all("imagine_done"))
    await bot.probe.wait("imagine", seen + 1)
    if bot.auto_reply:
        await bot.probe.wait("imagine_done", done + 1)
    await fake.wait_for_callback(payload["id"])
    return payload


# ======================================================================================
# Real client end to end
# ======================================================================================


async def test_connects_becomes_ready_and_fills_guild_cache(fake: FakeDiscord) -> None:
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    async with running_bot(fake, intents=intents) as bot:
        conn = await fake.wait_ready()
        # discord.py asks for zlib-stream and the fake really compresses.
        assert conn.query == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
        assert conn.compression == "zlib-stream"
        assert conn.heartbeats >= 1  # discord.py beats right after HELLO
        assert fake.identifies[0]["token"] == fake.token
        assert fake.identifies[0]["intents"] == intents.value
        me = await fake.wait_for_request(lambda r: r.path == "/users/@me")
        assert me.headers["Authorization"] == f"Bot {fake.token}"
        assert any(r.path == "/oauth2/applications/@me" for r in fake.requests)

        assert bot.user is not None and bot.user.id == fake.bot_user.id
        assert bot.application_id == fake.application_id
        guild = bot.get_guild(fake.guild.id)
        assert guild is not None and guild.name == fake.guild.name
        general = guild.get_channel(fake.channel.id)
        nsfw = guild.get_channel(fake.nsfw_channel.id)
        assert isinstance(general, discord.TextChannel) and not general.is_nsfw()
        assert isinstance(nsfw, discord.TextChannel) and nsfw.is_nsfw()
        # With the members intent discord.py chunks the guild (op 8) and gets everyone.
        admin = guild.get_member(fake.admin.id)
        member = guild.get_member(fake.member.id)
        assert admin is not None and member is not None
        assert admin.guild_permissions.manage_guild
        assert not member.guild_permissions.manage_guild
        assert guild.me.guild_permissions.attach_files
        assert guild.owner_id == fake.owner.id
        assert any(f.get("op") == 8 for f in conn.received)
    await fake.wait_disconnected()
    # Client.close() calls ws.close(code=1000) from another task while poll_event() is
    # receiving; aiohttp hands the close to that reader, whose cleanup closes with 4000.
    # So on the wire a clean discord.py shutdown usually says 4000 (session stays resumable).
    assert fake.connections[-1].close_code in (1000, 4000)


async def test_sync_stores_commands_and_rejects_bad_ones(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        synced = await sync_guild(bot, fake)
        assert {c.name for c in synced} == {"imagine", "banana", "Edit image"}
        stored = {c["name"]: c for c in fake.commands_for(fake.guild.id)}
        options = {o["name"]: o for o in stored["imagine"]["options"]}
        assert options["prompt"]["type"] == 3 and options["prompt"]["required"] is True
        assert options["ref"]["type"] == 11
        assert stored["Edit image"]["type"] == 3
        first_ids = {c.name: c.id for c in synced}
        again = await sync_guild(bot, fake)
        assert {c.name: c.id for c in again} == first_ids  # overwrite keeps ids

        app_id, guild_id = fake.application_id, fake.guild.id
        bad_payloads = [
            [{"name": "Bad Name", "description": "x", "type": 1}],
            [{"name": "x" * 33, "description": "x", "type": 1}],
            [{"name": "ok", "description": "d" * 101, "type": 1}],
            [
                {
                    "name": "ok",
                    "description": "d",
                    "type": 1,
                    "options": [
                        {"name": f"o{i}", "description": "d", "type": 3} for i in range(26)
                    ],
                }
            ],
            [
                {
                    "name": "ok",
                    "description": "d",
                    "type": 1,
                    "options": [
                        {
                            "name": "o",
                            "description": "d",
                            "type": 3,
                            "choices": [{"name": f"c{i}", "value": f"c{i}"} for i in range(26)],
                        }
                    ],
                }
            ],
            [
                {
                    "name": "ok",
                    "description": "d",
                    "type": 1,
                    "options": [
                        {"name": "a", "description": "d", "type": 3},
                        {"name": "b", "description": "d", "type": 3, "required": True},
                    ],
                }
            ],
        ]
        for payload in bad_payloads:
            with pytest.raises(discord.HTTPException) as err:
                await bot.http.bulk_upsert_guild_commands(app_id, guild_id, payload=payload)
            assert (err.value.status, err.value.code) == (400, 50035), payload
        assert set(stored) == {c["name"] for c in fake.commands_for(fake.guild.id)}

        # Through CommandTree.sync the 50035 becomes CommandSyncFailure.
        command = bot.tree.get_command("imagine", guild=discord.Object(fake.guild.id))
        assert isinstance(command, app_commands.Command)
        command.name = "Imagine"
        try:
            with pytest.raises(app_commands.CommandSyncFailure) as failure:
                await bot.tree.sync(guild=discord.Object(fake.guild.id))
            assert "Command name is invalid" in str(failure.value)
        finally:
            command.name = "imagine"


async def test_slash_command_defer_then_edit_with_file_and_view(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        ref = fake.add_attachment(PNG, "ref.png", "image/png")
        assert ref["url"].startswith(fake.base_url + "/attachments/")
        payload = await _imagine(fake, bot, ref=ref)
        iid = payload["id"]

        # defer() -> callback type 5, well inside the 3 s window.
        cb = fake.callbacks_for(iid)[0]
        assert cb.accepted and cb.type == 5 and cb.status == 200
        assert cb.latency is not None and 0 <= cb.latency < 3
        interaction, prompt, ref_obj, ref_bytes = bot.probe.all("imagine")[0]
        assert prompt == "a banana"
        assert ref_obj.filename == "ref.png" and ref_obj.width == 16 and ref_obj.height == 12
        assert ref_bytes == PNG  # Attachment.read() downloaded from the fake
        assert interaction.filesize_limit == 10 * 1024 * 1024

        # edit_original_response -> multipart PATCH with the file and the components.
        patch = await fake.wait_for_request(_is_original_patch)
        assert patch.is_multipart and patch.status == 200
        assert [(f.name, f.filename, f.data) for f in patch.files] == [
            ("files[0]", "result.png", RESULT_PNG)
        ]
        body = patch.payload_json
        assert body["content"] == "**a banana**"
        assert body["attachments"] == [{"id": 0, "filename": "result.png"}]
        job = f"job{iid}"
        assert _custom_ids(body["components"]) == [f"img:{a}:{job}" for a in LABELS]
        callback_at = next(r.at for r in fake.requests if r.path.endswith("/callback"))
        assert callback_at <= patch.at

        original = fake.original_message(iid)
        assert original is not None
        assert original["flags"] == 0  # loading flag cleared by the edit
        assert original["type"] == 20 and original["interaction_metadata"]["id"] == iid
        [attachment] = original["attachments"]
        assert attachment["content_type"] == "image/png" and attachment["width"] == 32
        assert await bot.http.get_from_cdn(attachment["url"]) == RESULT_PNG
        assert fake.messages_in(fake.channel.id)[-1]["id"] == original["id"]

        message = await interaction.original_response()
        assert message.attachments[0].filename == "result.png"
        assert [c.custom_id for c in message.components[0].children] == _custom_ids(
            body["components"]
        )


async def test_button_click_reaches_dynamic_item_and_modal_submit(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        payload = await _imagine(fake, bot)
        job = f"job{payload['id']}"
        original = fake.original_message(payload["id"])
        assert original is not None

        click = await fake.send_interaction(
            fake.component_click(f"img:vary:{job}", original, user=fake.admin)
        )
        got_job, inter = await bot.probe.wait("button:vary")
        assert got_job == job and inter.user.id == fake.admin.id
        assert inter.user.guild_permissions.manage_guild
        cb = await fake.wait_for_callback(click["id"])
        assert cb.type == 6
        assert must(fake.original_message(click["id"]))["id"] == original["id"]

        with pytest.raises(ValueError, match="no component"):
            fake.component_click("img:nope:1234", original)

        edit = await fake.send_interaction(fake.component_click(f"img:edit:{job}", original))
        cb = await fake.wait_for_callback(edit["id"])
        assert cb.type == 9
        assert cb.data["title"] == "Edit image" and cb.data["custom_id"] == f"img:editmodal:{job}"

        with pytest.raises(ValueError, match="no inputs"):
            fake.modal_submit(f"img:editmodal:{job}", {"wrong": "x"})
        submit = await fake.send_interaction(
            fake.modal_submit(f"img:editmodal:{job}", {"instruction": "make it yellow"})
        )
        got_job, value, submit_inter = await bot.probe.wait("modal_submit")
        assert (got_job, value) == (job, "make it yellow")
        assert submit_inter.user.id == fake.member.id  # the user who opened the modal
        assert submit["message"]["id"] == original["id"]
        await fake.wait_for_request(
            lambda r: r.method == "POST" and r.path.startswith("/webhooks/") and r.status == 200
        )
        # The first followup after defer(thinking=True) edits the loading message.
        answer = fake.original_message(submit["id"])
        assert answer is not None and answer["content"] == f"Editing {job}: make it yellow"
        assert answer["flags"] == 0
        assert fake.followups(submit["id"]) == []


async def test_send_message_with_file_then_update_message_from_button(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        await sync_guild(bot, fake)
        payload = await fake.send_interaction(fake.slash_command("banana"))
        cb = await fake.wait_for_callback(payload["id"])
        assert cb.type == 4 and [f.data for f in cb.files] == [PNG]
        assert cb.data["content"] == "banana!"
        posted = fake.original_message(payload["id"])
        assert posted is not None and posted["attachments"][0]["filename"] == "banana.png"
        job = f"ban{payload['id']}"

        click = await fake.send_interaction(fake.component_click(f"img:up4k:{job}", posted))
        cb = await fake.wait_for_callback(click["id"])
        assert cb.type == 7 and [f.filename for f in cb.files] == ["up4k.png"]
        updated = fake.get_message(posted["id"])
        assert updated is not None and updated["content"] == "Upscaled"
        assert [a["filename"] for a in updated["attachments"]] == ["up4k.png"]
        assert updated["edited_timestamp"] is not None
        assert must(fake.original_message(click["id"]))["id"] == posted["id"]


async def test_ephemeral_error_autocomplete_and_interaction_context(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        await sync_guild(bot, fake)
        notes = fake.add_attachment(b"not an image", "notes.txt")
        assert notes["content_type"] == "text/plain"
        payload = await fake.send_interaction(
            fake.slash_command("imagine", {"prompt": "x", "ref": notes})
        )
        cb = await fake.wait_for_callback(payload["id"])
        assert cb.type == 4 and cb.data["flags"] == 64
        reply = fake.original_message(payload["id"])
        assert reply is not None and reply["content"] == "References must be images."
        assert reply["id"] not in [m["id"] for m in fake.messages_in(fake.channel.id)]
        assert reply in fake.messages_in(fake.channel.id, include_ephemeral=True)

        ac = await fake.send_interaction(
            fake.autocomplete("imagine", {"prompt": "x", "style": "WAT"}, focused="style")
        )
        cb = await fake.wait_for_callback(ac["id"])
        assert cb.type == 8 and cb.data["choices"] == [
            {"name": "watercolor", "value": "watercolor"}
        ]

        nsfw = await fake.send_interaction(
            fake.slash_command(
                "imagine",
                {"prompt": "x"},
                user=fake.admin,
                channel_id=fake.nsfw_channel.id,
                locale="de",
            )
        )
        await bot.probe.wait("imagine_done", 1)
        inter = next(i for i, *_ in bot.probe.all("imagine") if i.id == int(nsfw["id"]))
        assert isinstance(inter.channel, discord.TextChannel) and inter.channel.is_nsfw()
        assert inter.permissions.manage_guild and inter.app_permissions.attach_files
        assert not inter.app_permissions.manage_guild
        assert (
            inter.locale is discord.Locale.german
            and inter.guild_locale is discord.Locale.american_english
        )
        assert isinstance(inter.user, discord.Member) and inter.user.id == fake.admin.id

        dm = await fake.send_interaction(fake.slash_command("imagine", {"prompt": "x"}, dm=True))
        await bot.probe.wait("imagine_done", 2)
        inter = next(i for i, *_ in bot.probe.all("imagine") if i.id == int(dm["id"]))
        assert inter.guild is None and isinstance(inter.channel, discord.DMChannel)
        assert must(fake.original_message(dm["id"]))["attachments"][0]["filename"] == "result.png"


async def test_message_context_menu_opens_modal(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        await sync_guild(bot, fake)
        cat = fake.add_attachment(PNG, "cat.png", ephemeral=False)
        target = await fake.send_message_create("look at this", attachments=[cat])
        payload = await fake.send_interaction(
            fake.message_context_menu("Edit image", target, user=fake.admin)
        )
        interaction, message = await bot.probe.wait("edit_image")
        assert message.id == int(target["id"])
        assert message.attachments[0].filename == "cat.png"
        assert interaction.data["type"] == 3
        cb = await fake.wait_for_callback(payload["id"])
        assert cb.type == 9 and cb.data["custom_id"] == f"img:editmodal:msg{target['id']}"


async def test_followup_after_token_expiry_fails_with_50027(fake: FakeDiscord) -> None:
    async with running_bot(fake, auto_reply=False) as bot:
        await _imagine(fake, bot)
        interaction = bot.probe.all("imagine")[0][0]
        progress = await interaction.followup.send("still working", wait=True)
        assert must(fake.original_message(interaction.id))["id"] == str(
            progress.id
        )  # edits loading
        await progress.edit(content="still working: 50%")  # PATCH .../messages/{id}
        assert must(fake.get_message(progress.id))["content"] == "still working: 50%"
        extra = await interaction.followup.send("a second followup", wait=True)
        assert [m["id"] for m in fake.followups(interaction.id)] == [str(extra.id)]
        fake.advance_clock(fake.token_lifetime + 1)
        with pytest.raises(discord.HTTPException) as err:
            await interaction.followup.send("too late")
        assert (err.value.status, err.value.code) == (401, 50027)
        with pytest.raises(discord.HTTPException) as err:
            await interaction.edit_original_response(content="too late")
        assert (err.value.status, err.value.code) == (401, 50027)
        # The bot token still works for the channel.
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("posted with the bot token")
        assert fake.get_message(sent.id) is not None


async def test_second_acknowledgement_fails(fake: FakeDiscord) -> None:
    async with running_bot(fake, auto_reply=False) as bot:
        payload = await _imagine(fake, bot)
        interaction = bot.probe.all("imagine")[0][0]
        with pytest.raises(discord.InteractionResponded):
            await interaction.response.defer()  # discord.py refuses locally
        adapter = async_context.get()
        with pytest.raises(discord.HTTPException) as err:  # the fake refuses on the wire
            await adapter.create_interaction_response(
                interaction.id,
                interaction.token,
                session=interaction._session,
                params=interaction_response_params(type=5),
            )
        assert (err.value.status, err.value.code) == (400, 40060)
        assert "already been acknowledged" in str(err.value)
        callbacks = fake.callbacks_for(payload["id"])
        assert [(c.type, c.status, c.error_code) for c in callbacks] == [
            (5, 200, None),
            (5, 400, 40060),
        ]


async def test_channel_upload_over_limit_is_refused(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        big = discord.File(io.BytesIO(b"\0" * (11 * 1024 * 1024)), "big.png")
        with pytest.raises(discord.HTTPException) as err:
            await channel.send("too big", file=big)
        assert (err.value.status, err.value.code) == (413, 40005)
        ok = await channel.send("fits", file=discord.File(io.BytesIO(PNG), "ok.png"))
        assert ok.attachments[0].size == len(PNG)
        edited = await ok.edit(content="fits, edited")
        assert edited.content == "fits, edited" and len(edited.attachments) == 1
        stored = fake.messages_in(fake.channel.id)
        assert [m["content"] for m in stored] == ["fits, edited"]
        # Fetch routes.
        fetched = await bot.fetch_channel(fake.channel.id)
        assert isinstance(fetched, discord.TextChannel) and fetched.name == "general"
        again = await channel.fetch_message(ok.id)
        assert again.content == "fits, edited" and again.attachments[0].filename == "ok.png"
        guild = await bot.fetch_guild(fake.guild.id)
        assert guild.name == fake.guild.name and guild.owner_id == fake.owner.id
        member = await guild.fetch_member(fake.admin.id)
        assert member.guild_permissions.manage_guild
        user = await bot.fetch_user(fake.member.id)
        assert user.name == "bob-member"
        with pytest.raises(discord.NotFound) as err:
            await channel.fetch_message(12345)
        assert err.value.code == 10008
        # The bot's own message comes back as MESSAGE_CREATE, like on Discord.
        own = await bot.probe.wait("message")
        assert own.id == ok.id and own.author.id == fake.bot_user.id


async def test_reconnect_with_new_client_gets_queued_interaction(fake: FakeDiscord) -> None:
    async with running_bot(fake) as first:
        await sync_guild(first, fake)
    await fake.wait_disconnected()
    assert fake.connections[0].close_code in (1000, 4000)

    payload = await fake.send_interaction(fake.slash_command("imagine", {"prompt": "queued"}))
    assert fake.interactions[int(payload["id"])].delivered_at is None

    async with running_bot(fake) as second:
        cb = await fake.wait_for_callback(payload["id"])
        assert cb.type == 5
        await second.probe.wait("imagine_done")
        assert len(fake.identifies) == 2 and fake.ready_count == 2
        assert fake.connections[-1].session_id != fake.connections[0].session_id
        assert second.get_guild(fake.guild.id) is not None


@pytest.mark.parametrize("allow_resume", [True, False])
async def test_dropped_connection_resumes_or_reidentifies(allow_resume: bool) -> None:
    async with FakeDiscord(allow_resume=allow_resume) as fake, running_bot_at(fake) as bot:
        first = await fake.wait_ready()
        await fake.drop_connections(4000)
        payload = await fake.send_interaction(fake.slash_command("imagine", {"prompt": "again"}))
        # After op 9 discord.py sleeps 5 s before a non-initial IDENTIFY (before_identify_hook).
        cb = await fake.wait_for_callback(payload["id"], timeout=15)
        assert cb.type == 5
        await bot.probe.wait("imagine_done")
        latest = fake.connections[-1]
        if allow_resume:
            assert fake.resume_count == 1 and latest.resumed
            assert latest.session_id == first.session_id
            assert len(fake.identifies) == 1
        else:
            assert fake.refused_resumes == 1
            assert len(fake.identifies) == 2 and fake.ready_count == 2


@contextlib.asynccontextmanager
async def running_bot_at(fake: FakeDiscord, **kwargs: Any) -> AsyncIterator[BananaTestBot]:
    with pointed_at(fake):
        async with running_bot(fake, **kwargs) as bot:
            yield bot


async def test_reply_mentioning_the_bot_without_message_content_intent(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:  # default intents: no MESSAGE_CONTENT
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        result = await channel.send("here you go", file=discord.File(io.BytesIO(PNG), "r.png"))
        await bot.probe.wait("message")  # the echo of our own message

        plain = await fake.send_message_create("no mention here", author=fake.member)
        got = await bot.probe.wait("message", 2)
        assert got.id == int(plain["id"]) and got.content == ""  # redacted without the intent

        result_json = fake.get_message(result.id)
        assert result_json is not None
        reply = await fake.send_message_create(
            "make it blue", author=fake.member, reply_to=result_json
        )
        got = await bot.probe.wait("message", 3)
        assert got.id == int(reply["id"]) and got.content == "make it blue"
        assert bot.user in got.mentions
        assert got.reference is not None and got.reference.message_id == result.id
        resolved = got.reference.resolved
        assert isinstance(resolved, discord.Message)
        assert resolved.attachments[0].filename == "r.png"

        await fake.send_message_create("hey bot", author=fake.admin, mention_bot=True)
        got = await bot.probe.wait("message", 4)
        assert got.content == f"<@{fake.bot_user.id}> hey bot"


async def test_privileged_intent_not_enabled_is_refused() -> None:
    async with FakeDiscord(privileged_intents=Intents.GUILD_MEMBERS) as fake:
        intents = discord.Intents.default()
        intents.message_content = True
        bot = BananaTestBot(intents=intents)
        with pointed_at(fake), pytest.raises(discord.PrivilegedIntentsRequired):
            await bot.start(fake.token)
        await bot.close()
        assert fake.connections[0].close_code == 4014


async def test_bad_token_fails_login() -> None:
    async with FakeDiscord() as fake:
        bot = BananaTestBot()
        with pointed_at(fake), pytest.raises(discord.LoginFailure):
            await bot.start("wrong-token")
        await bot.close()


# ======================================================================================
# Wire contract (plain aiohttp)
# ======================================================================================


class RawGateway:
    """Minimal gateway client that inflates zlib-stream frames the way discord.py does."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inflate = zlib.decompressobj()
        self.binary_frames = 0

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.BINARY:
            assert msg.data.endswith(b"\x00\x00\xff\xff")
            self.binary_frames += 1
            frame: dict[str, Any] = json.loads(self.inflate.decompress(msg.data))
            return frame
        if msg.type is aiohttp.WSMsgType.TEXT:
            text_frame: dict[str, Any] = json.loads(msg.data)
            return text_frame
        raise ConnectionError(f"{msg.type.name} {msg.data} {msg.extra}")

    async def until(self, t: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame.get("t") == t:
                return frame

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))


@contextlib.asynccontextmanager
async def raw_gateway(
    fake: FakeDiscord, session: aiohttp.ClientSession, *, intents: int = 513
) -> AsyncIterator[RawGateway]:
    url = f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream"
    async with session.ws_connect(url) as ws:
        gw = RawGateway(ws)
        hello = await gw.recv()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await gw.send(1, None)
        assert (await gw.recv())["op"] == 11
        await gw.send(2, {"token": fake.token, "intents": intents, "properties": {}})
        yield gw


async def test_rest_contract(fake: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_url}/users/@me") as resp:
            assert resp.status == 401 and (await resp.json())["message"] == "401: Unauthorized"
        async with http.get(f"{fake.api_url}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"  # exactly, for discord.py
            assert "X-RateLimit-Bucket" in resp.headers
            assert (await resp.json())["id"] == str(fake.bot_user.id)
        async with http.get(f"{fake.api_url}/gateway/bot", headers=auth) as resp:
            body = await resp.json()
            assert body["url"] == fake.gateway_url and body["shards"] == 1
        async with http.get(f"{fake.api_url}/nope", headers=auth) as resp:
            assert resp.status == 404
        async with http.post(
            f"{fake.api_url}/interactions/1/abc/callback", json={"type": 5}
        ) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10062

        url = f"{fake.api_url}/channels/{fake.channel.id}/messages"
        button = {"type": 2, "style": 1, "label": "x"}
        rows = [{"type": 1, "components": [{**button, "custom_id": f"b{i}"}]} for i in range(6)]
        wide = [{"type": 1, "components": [{**button, "custom_id": f"b{i}"} for i in range(6)]}]
        long_id = [{"type": 1, "components": [{**button, "custom_id": "x" * 101}]}]
        dup = [{"type": 1, "components": [{**button, "custom_id": "same"}] * 2}]
        for components in (rows, wide, long_id, dup):
            async with http.post(
                url, json={"content": "x", "components": components}, headers=auth
            ) as resp:
                assert resp.status == 400 and (await resp.json())["code"] == 50035
        async with http.post(url, json={"content": ""}, headers=auth) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50006
        async with http.post(url, json={"content": "x" * 2001}, headers=auth) as resp:
            assert resp.status == 400

        form = aiohttp.FormData(quote_fields=False)
        form.add_field("payload_json", json.dumps({"content": "many"}))
        for i in range(11):
            form.add_field(
                f"files[{i}]", PNG, filename=f"{i}.png", content_type="application/octet-stream"
            )
        async with http.post(url, data=form, headers=auth) as resp:
            assert resp.status == 400 and "attachments" in (await resp.json())["errors"]
        recorded = fake.requests[-1]
        assert len(recorded.files) == 11 and recorded.payload_json == {"content": "many"}

    # No SEND_MESSAGES in a channel -> 403 50013.
    locked = fake.add_channel(
        fake.guild, "locked", overwrites=[Overwrite(fake.guild.id, deny=Perm.SEND_MESSAGES)]
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{fake.api_url}/channels/{locked.id}/messages", json={"content": "x"}, headers=auth
        ) as resp,
    ):
        assert resp.status == 403 and (await resp.json())["code"] == 50013


async def test_rate_limit_injection_is_handled_by_discord_py(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        fake.inject_fault(r"^/channels/\d+/messages$", method="POST", status=429, retry_after=0.2)
        mark = fake.mark()
        await channel.send("after a 429")
        statuses = [r.status for r in fake.requests[mark:] if r.method == "POST"]
        assert statuses == [429, 200]


async def test_gateway_contract_deadlines_and_modal_rules(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http, raw_gateway(fake, http) as gw:
        ready = await gw.until("READY")
        assert ready["d"]["application"]["id"] == str(fake.application_id)
        assert ready["d"]["resume_gateway_url"] == fake.gateway_url
        assert ready["d"]["guilds"] == [{"id": str(fake.guild.id), "unavailable": True}]
        guild = (await gw.until("GUILD_CREATE"))["d"]
        assert {c["name"]: c["nsfw"] for c in guild["channels"]} == {
            "general": False,
            "nsfw-art": True,
        }
        assert [m["user"]["id"] for m in guild["members"]] == [str(fake.bot_user.id)]
        assert gw.binary_frames >= 3

        base = fake.api_url
        # A modal with a 46-character title is refused; the interaction stays un-acked.
        first = await fake.send_interaction(fake.slash_command("imagine", {"prompt": "x"}))
        got = await gw.until("INTERACTION_CREATE")
        assert got["d"] == first and got["d"]["attachment_size_limit"] == 10 * 1024 * 1024
        cb_url = f"{base}/interactions/{first['id']}/{first['token']}/callback"
        modal = {
            "title": "t" * 46,
            "custom_id": "m",
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "i", "label": "l", "style": 1}]}
            ],
        }
        async with http.post(cb_url, json={"type": 9, "data": modal}) as resp:
            assert resp.status == 400
            assert "title" in (await resp.json())["errors"]["data"]
        modal["title"] = "ok"
        async with http.post(f"{cb_url}?with_response=1", json={"type": 9, "data": modal}) as resp:
            assert resp.status == 200
            assert (await resp.json())["interaction"]["id"] == first["id"]

        # Past the 3 s deadline: 10062 for the callback and 50027 for webhooks.
        late = await fake.send_interaction(fake.slash_command("imagine", {"prompt": "y"}))
        await gw.until("INTERACTION_CREATE")
        fake.advance_clock(3.5)
        late_cb = f"{base}/interactions/{late['id']}/{late['token']}/callback"
        async with http.post(late_cb, json={"type": 5}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10062
        hook = f"{base}/webhooks/{fake.application_id}/{late['token']}"
        async with http.post(hook, json={"content": "x"}) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == 50027
        assert [c.error_code for c in fake.callbacks_for(late["id"])] == [10062]

        # intents=513 is GUILDS | GUILD_MESSAGES: messages arrive, but without content.
        await fake.send_message_create("plain")
        msg = await gw.until("MESSAGE_CREATE")
        assert msg["d"]["content"] == ""  # no MESSAGE_CONTENT intent -> redacted


async def test_gateway_rejects_bad_identify(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            hello = json.loads((await ws.receive(timeout=5)).data)
            assert hello["op"] == 10  # text frames when compression was not requested
            await ws.send_str(json.dumps({"op": 2, "d": {"token": "nope", "intents": 1}}))
            closing = await ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004
        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            await ws.receive(timeout=5)
            await ws.send_str(json.dumps({"op": 8, "d": {"guild_id": "1"}}))
            closing = await ws.receive(timeout=5)
            assert closing.data == 4003  # not authenticated


async def test_zstd_request_without_a_zstd_module_gets_text_frames(fake: FakeDiscord) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json&compress=zstd-stream") as ws,
    ):
        hello = await ws.receive(timeout=5)
        if fake.connections[-1].compression is None:  # no compression.zstd / zstandard here
            assert hello.type is aiohttp.WSMsgType.TEXT and json.loads(hello.data)["op"] == 10
        else:
            assert hello.type is aiohttp.WSMsgType.BINARY
