"""Routing: which provider gets a job, and what it reserves there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.app import assemble_core, build_providers
from bot.catalog import default_catalog
from bot.errors import ConfigurationError, InvalidRequest
from bot.interfaces import ProviderCapabilities
from bot.media.store import FileMediaStore
from bot.models import ImageRequest, ReferenceImage
from bot.policy import ChannelPolicy
from bot.service import ImageService
from bot.settings import Settings
from bot.storage import SqliteStore
from tests.conftest import origin
from tests.fakes.provider import ScriptedProvider

BOTH = frozenset({"nano-banana-pro", "nano-banana-2"})
REF = ReferenceImage(media_key="a" * 64 + ".png", mime_type="image/png", width=8, height=8)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ImageService]:
    links_only = ScriptedProvider(
        name="links",
        capabilities=ProviderCapabilities(
            models=BOTH,
            inline_references=False,
            price_floor_micros={"nano-banana-pro": 150_000},
        ),
    )
    inline = ScriptedProvider(name="inline")
    async with SqliteStore(tmp_path / "r.db") as store, httpx.AsyncClient() as client:
        built, _, _ = assemble_core(
            catalog=default_catalog(),
            store=store,
            media=FileMediaStore(tmp_path / "m"),
            providers={"links": links_only, "inline": inline},
            routing=["links", "inline"],
            reference_client=client,
            default_policy=ChannelPolicy(),
            concurrency=1,
        )
        yield built


async def test_requests_with_references_skip_providers_that_need_links(
    service: ImageService,
) -> None:
    plain = await service.submit(ImageRequest(prompt="a lighthouse"), origin(), idempotency_key="1")
    assert plain.job.provider == "links"
    with_ref = await service.submit(
        ImageRequest(prompt="a lighthouse", references=(REF,)), origin(), idempotency_key="2"
    )
    assert with_ref.job.provider == "inline"
    with pytest.raises(InvalidRequest):
        await service.submit(
            ImageRequest(prompt="a lighthouse", references=(REF,)),
            origin(),
            idempotency_key="3",
            provider="links",
        )


async def test_a_provider_dearer_than_the_catalog_reserves_its_own_price(
    service: ImageService,
) -> None:
    pro = ImageRequest(prompt="a lighthouse", model="nano-banana-pro", number_results=2)
    there = await service.submit(pro, origin(), idempotency_key="1")
    assert there.job.provider == "links" and there.estimate_micros == 2 * 150_000
    elsewhere = await service.submit(pro, origin(), idempotency_key="2", provider="inline")
    assert elsewhere.estimate_micros == 2 * 138_000


async def test_every_keyed_provider_is_built_and_routed_in_order(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        runware_api_key="rw",
        runflow_api_key="rf",
        runbase_api_key="rb",
        gemini_api_key="gm",
        data_dir=tmp_path,
    )
    assert settings.configured_providers() == ["runware", "runflow", "runbase", "gemini"]
    async with httpx.AsyncClient() as client:
        built = build_providers(settings, client)
        assert set(built) == {"sandbox", "runware", "runflow", "runbase", "gemini"}
        assert not built["gemini"].capabilities.resumable
        assert not built["runflow"].capabilities.inline_references
        broken = Settings(_env_file=None, providers="runbase", data_dir=tmp_path)  # type: ignore[call-arg]
        with pytest.raises(ConfigurationError, match="RUNBASE_API_KEY"):
            build_providers(broken, client)
