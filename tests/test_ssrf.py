"""Reference links never make the bot connect inside its own network (SSRF)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from bot.errors import ReferenceImageError
from bot.media.guard import guarded_client, is_public_address
from bot.media.references import fetch_reference
from tests.fakes.provider import png_bytes


class Server:
    """A loopback web server that counts every request it receives."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.hits: list[str] = []
        self.redirect_to: str | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(body=png_bytes(8, 8), content_type="image/png")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def loopback() -> AsyncIterator[Server]:
    server = Server("127.0.0.1")
    await server.start()
    yield server
    await server.close()


def resolving(table: dict[str, list[str]]) -> Callable[[str, int], object]:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/a.png",
        "http://[::1]:{port}/a.png",
        "http://localhost:{port}/a.png",
        "http://10.0.0.1:{port}/a.png",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_internal_links_are_refused_before_any_byte_is_sent(
    loopback: Server, url: str
) -> None:
    async with guarded_client(timeout=5) as client:
        with pytest.raises(ReferenceImageError, match="not a public internet address"):
            await fetch_reference(url.format(port=loopback.port), client, timeout=5)
    assert loopback.hits == []


async def test_a_name_that_resolves_to_loopback_is_refused(loopback: Server) -> None:
    resolver = resolving({"images.example.com": ["93.184.216.34", "127.0.0.1"]})
    async with guarded_client(timeout=5, resolver=resolver) as client:  # type: ignore[arg-type]
        with pytest.raises(ReferenceImageError, match="not a public internet address"):
            await fetch_reference(f"http://images.example.com:{loopback.port}/a.png", client)
    assert loopback.hits == []


async def test_a_public_link_that_redirects_to_loopback_is_refused(loopback: Server) -> None:
    # 127.0.0.2 stands in for a public server: the test's guard allows only it.
    public = Server("127.0.0.2")
    await public.start()
    try:
        public.redirect_to = f"http://127.0.0.1:{loopback.port}/secret.png"
        allow_only_public = lambda a: str(a) == "127.0.0.2"  # noqa: E731
        async with guarded_client(timeout=5, allow=allow_only_public) as client:
            with pytest.raises(ReferenceImageError, match="not a public internet address"):
                await fetch_reference(f"http://127.0.0.2:{public.port}/a.png", client)
        assert public.hits == ["/a.png"]
        assert loopback.hits == []
    finally:
        await public.close()


async def test_an_allowed_address_is_fetched(loopback: Server) -> None:
    async with guarded_client(timeout=5, allow=lambda a: True) as client:
        data = await fetch_reference(f"http://127.0.0.1:{loopback.port}/a.png", client)
    assert data.startswith(b"\x89PNG") and loopback.hits == ["/a.png"]
