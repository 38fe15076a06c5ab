"""Reference images from bytes, http(s) links or local files: fetch, clean, store."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Final, Protocol

import httpx

from bot.errors import ReferenceImageError
from bot.interfaces import StoredMedia
from bot.media.guard import AddressRefused
from bot.media.images import MAX_PIXELS, prepare_reference
from bot.models import ReferenceImage

__all__ = [
    "MAX_REDIRECTS",
    "MAX_REFERENCE_BYTES",
    "ImageSink",
    "fetch_reference",
    "load_reference",
    "safe_url",
]

MAX_REFERENCE_BYTES: Final = 20 * 1024 * 1024
"""Default cap on a reference image's encoded size, in bytes (20 MiB)."""

MAX_REDIRECTS: Final = 3
"""Redirects followed per fetch; each hop must stay http or https."""

_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# A scheme of two or more characters, so "C:\pictures\cat.png" stays a file path.
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


class ImageSink(Protocol):
    """Where :func:`load_reference` puts the cleaned bytes (a :class:`MediaStore` will do)."""

    async def put_image(self, data: bytes) -> StoredMedia: ...


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ReferenceImageError("that link is not a valid web address") from exc
    if parsed.scheme not in ("http", "https"):
        raise ReferenceImageError("only http and https links can be used for reference images")
    if not parsed.host:
        raise ReferenceImageError("that link has no host name")
    return parsed


def safe_url(url: str) -> str:
    """Return ``url`` as ``scheme://host[:port]/path`` for showing and storing.

    Drops the query and fragment (signed CDN links carry tokens there) and any
    ``user:password@``. Returns ``""`` for text that is not an http(s) URL.
    """
    try:
        parsed = _parse(url)
    except ReferenceImageError:
        return ""
    bare = httpx.URL(scheme=parsed.scheme, host=parsed.host, port=parsed.port, path=parsed.path)
    return str(bare)


async def _read_capped(response: httpx.Response, host: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ReferenceImageError(
            f"the image at {host} is {_size(int(declared))}; the limit is {_size(max_bytes)}"
        )
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Decompressing would let a small body expand without bound before it is counted.
        raise ReferenceImageError(
            f"{host} sent the image compressed ({encoding}); try another link"
        )
    parts: list[bytes] = []
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > max_bytes:
            raise ReferenceImageError(
                f"the image at {host} is larger than the limit of {_size(max_bytes)}"
            )
        parts.append(chunk)
    return b"".join(parts)


async def fetch_reference(
    url: str,
    client: httpx.AsyncClient,
    *,
    max_bytes: int = MAX_REFERENCE_BYTES,
    timeout: float = 20.0,  # noqa: ASYNC109 -- the deadline is part of this API, applied inside
) -> bytes:
    """Download a reference image's bytes from an http(s) link.

    Checks ``Content-Length`` first, then streams with a byte counter and stops as soon as
    the body passes ``max_bytes`` (reliability-security-perf.md §3.2). Asks for and accepts
    only an uncompressed body. Follows at most :data:`MAX_REDIRECTS` redirects itself (the
    client's ``follow_redirects`` is not used), each of which must stay http or https. The
    bytes are not inspected: pass them to :func:`bot.media.images.prepare_reference`.

    Address checks (private, loopback and link-local hosts, DNS rebinding) belong to the
    client: pass :func:`bot.media.guard.guarded_client` for links people give.

    Args:
        url: an ``http://`` or ``https://`` link.
        client: the HTTP client to use (its own timeouts and transport apply as well). It
            must carry no credentials: redirects are followed here, so its default headers
            go to every hop, whatever its host.
        max_bytes: the largest body accepted, in bytes.
        timeout: overall deadline for all hops and the whole body, in seconds.

    Returns:
        The body bytes.

    Raises:
        ReferenceImageError: another scheme, an unreachable host, a non-2xx answer, too many
            redirects, a body over ``max_bytes``, or the deadline passed. Messages name the
            host but never the query string, which may carry a token.
    """
    current = _parse(url)
    host = current.host
    headers = {"Accept": "image/*", "Accept-Encoding": "identity"}
    try:
        async with asyncio.timeout(timeout):
            for _hop in range(MAX_REDIRECTS + 1):
                async with client.stream(
                    "GET", current, headers=headers, follow_redirects=False
                ) as response:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        try:
                            current = _parse(str(current.join(location)))
                        except (ReferenceImageError, httpx.InvalidURL) as exc:
                            raise ReferenceImageError(
                                f"{host} redirected to a link that cannot be used"
                            ) from exc
                        host = current.host
                        continue
                    if not response.is_success:
                        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
                        raise ReferenceImageError(
                            f"{host} answered HTTP {response.status_code}{reason} "
                            "for the reference image"
                        )
                    return await _read_capped(response, host, max_bytes)
            raise ReferenceImageError(
                f"the link redirected more than {MAX_REDIRECTS} times (last at {host})"
            )
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ReferenceImageError(
            f"{host} did not send the reference image within {timeout:g} seconds"
        ) from exc
    except httpx.HTTPError as exc:
        if isinstance(exc.__cause__, AddressRefused):
            raise ReferenceImageError(
                f"{host} is not a public internet address; links into private or local "
                "networks are not allowed"
            ) from exc
        raise ReferenceImageError(f"could not download the reference image from {host}") from exc


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        if not path.is_file():
            raise ReferenceImageError(f"there is no file named {path.name}")
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ReferenceImageError(f"could not read the file {path.name}") from exc
    if len(data) > max_bytes:
        raise ReferenceImageError(f"{path.name} is larger than the limit of {_size(max_bytes)}")
    return data


async def load_reference(
    source: str | bytes | os.PathLike[str],
    *,
    client: httpx.AsyncClient,
    media: ImageSink,
    max_side: int = 2048,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_REFERENCE_BYTES,
    timeout: float = 20.0,  # noqa: ASYNC109 -- passed on to fetch_reference's own deadline
    allow_files: bool = True,
    index: int = -1,
) -> ReferenceImage:
    """Turn bytes, a link or a local file into a stored, cleaned :class:`ReferenceImage`.

    A ``str`` that starts with a scheme (``https:``, ``ftp:``, ``data:``...) is a link and
    goes through :func:`fetch_reference` (which refuses anything but http and https); any
    other ``str`` or path-like is a local file, read in a worker thread. The bytes are then
    validated, made upright, downscaled and re-encoded by
    :func:`bot.media.images.prepare_reference` (in a worker thread) and stored with
    ``media.put_image``.

    Args:
        source: encoded image bytes, an http(s) link, or a local file path.
        client: the HTTP client for links.
        media: where the cleaned bytes are stored.
        max_side: longest side of the stored image, in pixels.
        max_pixels: the largest declared width x height accepted, in pixels.
        max_bytes: the largest download or file accepted, in bytes.
        timeout: deadline for a download, in seconds.
        allow_files: whether a local file may be read. Pass False wherever ``source`` is
            text from a chat message, so nobody can make the bot read its own disk.
        index: the reference's position in the request, copied into raised errors.

    Returns:
        The stored reference; ``source`` is the file name, the link without its query
        string and credentials, or ``""`` for bytes.

    Raises:
        ReferenceImageError: the source cannot be read or fetched, or is not an allowed
            image (see :func:`fetch_reference` and :func:`~bot.media.images.probe`).
    """
    try:
        if isinstance(source, bytes):
            data, label = source, ""
        elif isinstance(source, str) and _SCHEME.match(source):
            data = await fetch_reference(source, client, max_bytes=max_bytes, timeout=timeout)
            label = safe_url(source)
        elif not allow_files:
            raise ReferenceImageError("reference images must be http or https links")
        else:
            path = Path(source)
            data = await asyncio.to_thread(_read_file, path, max_bytes)
            label = path.name
        prepared = await asyncio.to_thread(
            prepare_reference, data, max_side=max_side, max_pixels=max_pixels
        )
        stored = await media.put_image(prepared.data)
    except ReferenceImageError as exc:
        if index >= 0 and exc.index != index:
            raise ReferenceImageError(exc.message, index) from exc
        raise
    return ReferenceImage(
        media_key=stored.key,
        mime_type=stored.mime_type,
        width=stored.width,
        height=stored.height,
        source=label,
    )
