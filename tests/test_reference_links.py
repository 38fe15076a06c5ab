"""Reference links for link-only providers: ``BANANABOT_PUBLIC_URL/media/<token>``.

Runflow and Runbase fetch references from URLs (seeds 002-004). bananabot serves the
cleaned bytes of uploads, Slack files and CLI files at an unguessable, time-limited link;
without a public URL, such requests go to a provider that takes inline images.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.app import assemble_core, build_links
from bot.catalog import default_catalog
from bot.errors import ConfigurationError, InvalidRequest
from bot.media.links import MediaLinks, load_or_create_secret
from bot.media.store import FileMediaStore
from bot.models import ImageRequest
from bot.ops.metrics import Metrics
from bot.ops.server import OpsServer
from bot.policy import ChannelPolicy
from bot.providers.runflow import RunflowProvider
from bot.service import ImageService
from bot.settings import Settings
from bot.storage import SqliteStore
from bot.worker import Worker
from tests.conftest import Recorder, origin
from tests.fakes.provider import ScriptedProvider, png_bytes
from tests.fakes.runflow import RunflowEmulator

SECRET = "s3cret-for-tests-only-0123456789"
KEY = "ab" * 32 + ".png"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_link_resolves_to_its_key_until_it_expires() -> None:
    clock = Clock()
    links = MediaLinks("https://bot.example.com/", SECRET, ttl=600, clock=clock)
    url = links.link(KEY)
    assert url.startswith("https://bot.example.com/media/")
    token = url.rsplit("/", 1)[1]
    assert KEY not in url and "/" not in token
    clock.now += 600
    assert links.resolve(token) == KEY
    clock.now += 2
    assert links.resolve(token) is None


def test_forged_tampered_and_foreign_tokens_are_refused() -> None:
    links = MediaLinks("https://bot.example.com", SECRET)
    token = links.link(KEY).rsplit("/", 1)[1]
    other = MediaLinks("https://bot.example.com", "another-secret-0123456789")
    assert other.resolve(token) is None
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert links.resolve(tampered) is None
    assert links.resolve("not-a-token") is None
    assert links.resolve("../../etc/passwd") is None
    with pytest.raises(ValueError, match="media key"):
        links.link("../secret.png")


def test_the_secret_is_made_once_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "data" / "media-link-secret"
    first = load_or_create_secret(path)
    assert len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(path) == first


def test_build_links_needs_a_public_url_and_a_long_secret(tmp_path: Path) -> None:
    assert build_links(Settings(_env_file=None, BANANABOT_DATA_DIR=tmp_path)) is None
    made = build_links(
        Settings(
            _env_file=None,
            BANANABOT_DATA_DIR=tmp_path,
            BANANABOT_PUBLIC_URL="https://b.example.com/",
        )
    )
    assert made is not None and made.link(KEY).startswith("https://b.example.com/media/")
    with pytest.raises(ConfigurationError, match="BANANABOT_MEDIA_LINK_SECRET"):
        build_links(
            Settings(
                BANANABOT_DATA_DIR=tmp_path,
                BANANABOT_PUBLIC_URL="https://b.example.com",
                BANANABOT_MEDIA_LINK_SECRET="short",
            )
        )
    with pytest.raises(ValueError, match="http"):
        Settings(_env_file=None, BANANABOT_PUBLIC_URL="ftp://b.example.com")


@dataclass
class Stack:
    service: ImageService
    worker: Worker
    recorder: Recorder
    store: SqliteStore
    media: FileMediaStore
    emulator: RunflowEmulator
    ops: OpsServer
    http: httpx.AsyncClient
    links: MediaLinks
    clock: Clock


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Runflow (link-only) first, an inline provider second; links served by the ops server."""
    catalog = default_catalog()
    clock = Clock()
    async with (
        RunflowEmulator(api_key="rf-key") as emulator,
        SqliteStore(tmp_path / "l.db") as store,
        httpx.AsyncClient(timeout=5) as http,
    ):
        media = FileMediaStore(tmp_path / "media")
        # Checking a token needs only the secret, so the server's copy need not know the
        # port it will get; the workers' copy makes links to the server itself (behind a
        # proxy in production).
        ops = OpsServer(
            metrics=Metrics(store),
            checks={},
            media=media,
            links=MediaLinks("http://unused.invalid", SECRET, ttl=300, clock=clock),
            host="127.0.0.1",
            port=0,
        )
        serving = asyncio.create_task(ops.serve())
        await ops.started.wait()
        links_public = MediaLinks(
            f"http://127.0.0.1:{ops.bound_port}", SECRET, ttl=300, clock=clock
        )
        runflow = RunflowProvider(
            api_key="rf-key",
            api_url=emulator.base_url,
            client=http,
            poll_initial=0.01,
            poll_max=0.02,
            deadline=10,
        )
        service, worker, router = assemble_core(
            catalog=catalog,
            store=store,
            media=media,
            providers={"runflow": runflow, "inline": ScriptedProvider(name="inline")},
            routing=["runflow", "inline"],
            reference_client=http,
            default_policy=ChannelPolicy(),
            concurrency=2,
            idle_poll=0.05,
            links=links_public,
        )
        recorder = Recorder()
        router.register("test", recorder)
        working = asyncio.create_task(worker.run())
        try:
            yield Stack(
                service, worker, recorder, store, media, emulator, ops, http, links_public, clock
            )
        finally:
            for task in (working, serving):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def test_a_link_only_provider_gets_working_links_to_uploaded_references(
    stack: Stack,
) -> None:
    upload = png_bytes(300, 200)
    reference = await stack.service.load_reference(upload)
    submitted = await stack.service.submit(
        ImageRequest(prompt="make it blue", references=(reference,)),
        origin(),
        idempotency_key="k1",
    )
    assert submitted.job.provider == "runflow"
    done = await stack.recorder.wait_for(submitted.job.id, "done")
    assert done.job.provider == "runflow"
    creates = [r for r in stack.emulator.requests if r.method == "POST"]
    assert len(creates) == 1 and creates[0].path.endswith("/edit/runs")
    (url,) = creates[0].body["input"]["image_urls"]
    assert url.startswith(f"http://127.0.0.1:{stack.ops.bound_port}/media/")
    served = await stack.http.get(url)
    assert served.status_code == 200
    assert served.headers["content-type"] == reference.mime_type
    assert served.content == await stack.media.get(reference.media_key)
    # A guessed or altered token gets the same 404 as an expired one.
    assert (await stack.http.get(url[:-3] + "xyz")).status_code == 404
    assert (await stack.http.get(url.replace("/media/", "/media/a"))).status_code == 404


async def test_an_expired_link_is_refused(stack: Stack) -> None:
    reference = await stack.service.load_reference(png_bytes(64, 64))
    url = stack.links.link(reference.media_key)
    assert (await stack.http.get(url)).status_code == 200
    stack.clock.now += 301  # past the 300 s lifetime
    assert (await stack.http.get(url)).status_code == 404


@pytest.fixture
async def no_links(tmp_path: Path) -> AsyncIterator[ImageService]:
    async with SqliteStore(tmp_path / "n.db") as store, httpx.AsyncClient() as http:
        service, _, _ = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=FileMediaStore(tmp_path / "m"),
            providers={
                "runflow": RunflowProvider(api_key="k", api_url="http://127.0.0.1:1", client=http)
            },
            routing=["runflow"],
            reference_client=http,
            default_policy=ChannelPolicy(),
            concurrency=1,
        )
        yield service


async def test_without_a_public_url_uploads_are_refused_but_discord_links_pass(
    no_links: ImageService,
) -> None:
    reference = await no_links.load_reference(png_bytes(64, 64))
    with pytest.raises(InvalidRequest) as refused:
        await no_links.submit(
            ImageRequest(prompt="make it blue", references=(reference,)),
            origin(),
            idempotency_key="a",
        )
    assert "BANANABOT_PUBLIC_URL" in refused.value.message
    assert refused.value.field == "references"
    attached = reference.model_copy(
        update={"url": "https://cdn.discordapp.com/attachments/1/2/cat.png?ex=1&hm=2"}
    )
    ok = await no_links.submit(
        ImageRequest(prompt="make it blue", references=(attached,)), origin(), idempotency_key="b"
    )
    assert ok.job.provider == "runflow"
