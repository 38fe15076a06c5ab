"""An HTTP client that only ever connects to public internet addresses (SSRF guard).

Reference images can be links people type. Without a guard, a link to ``127.0.0.1``,
``10.0.0.1``, ``169.254.169.254`` (cloud metadata), ``[::1]``, a host name that resolves to
one of those, or a public link that redirects to one, makes the bot fetch from inside its own
network (shared/reference/reliability-security-perf.md §3.1).

The check sits where the connection is made: the network backend resolves the host itself,
refuses the connection if *any* resolved address is not public, and then connects to the
checked address literally, so a second DNS answer (rebinding) cannot swap it. TLS still
verifies the certificate against the host name. Redirects are followed by the caller, and
every hop goes through the same backend.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AddressRefused", "Resolver", "guarded_client", "is_public_address"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> IP address strings."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(httpcore.ConnectError):
    """The host resolves to an address the bot must not connect to (no byte was sent)."""


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only.

    Refuses loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254), shared
    (100.64/10), multicast, reserved and unspecified addresses, and IPv4 addresses hidden in
    IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4) are checked as IPv4.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (address.sixtofour if address.sixtofour else None)
        if embedded is None and address in ipaddress.IPv6Network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        resolver: Resolver,
        allow: Callable[[IPAddress], bool],
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._allow = allow
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore backend signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                found = await self._resolver(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}") from exc
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in dict.fromkeys(found)]
        if not addresses or not all(self._allow(a) for a in addresses):
            raise AddressRefused(f"{host} is not a public internet address")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore backend signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are never used for reference images")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(retries=0)
        # httpx builds its connection pool without a way to pass a network backend; the
        # pool it made has no connections yet, so it is replaced by an equivalent one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def guarded_client(
    *,
    timeout: float = 20.0,
    resolver: Resolver | None = None,
    allow: Callable[[IPAddress], bool] = is_public_address,
) -> httpx.AsyncClient:
    """An httpx client for untrusted links: public addresses only, no proxies from the
    environment, no redirects followed by itself, no credentials.

    Args:
        timeout: per-request timeout, seconds.
        resolver: (host, port) -> addresses; the system resolver by default (tests inject).
        allow: which resolved addresses may be connected to.

    Returns:
        A client whose connection attempts to refused addresses raise
        ``httpx.ConnectError`` (caused by :class:`AddressRefused`) before any byte is sent.
    """
    backend = _GuardedBackend(resolver or _system_resolver, allow)
    return httpx.AsyncClient(
        transport=_GuardedTransport(backend),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "bananabot/0.1"},
    )
