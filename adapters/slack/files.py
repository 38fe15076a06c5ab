"""Downloading people's Slack files (``url_private``) as reference images, with the bot token.

Slack serves a file's bytes only with ``Authorization: Bearer xoxb-…`` and the
``files:read`` scope; without them it answers HTTP 200 with an HTML sign-in page, not an
error (platforms.md §9.2). The token is sent only to Slack's file hosts, redirects are
followed by hand and only within those hosts, and downloads stop at a byte cap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urljoin, urlsplit

import aiohttp

from adapters.slack.translate import IMAGE_MIME_TYPES
from bot.errors import ReferenceImageError

__all__ = ["DEFAULT_FILE_HOSTS", "FILES_READ_MISSING", "MAX_FILE_BYTES", "SlackFiles", "is_image"]

log = logging.getLogger(__name__)

DEFAULT_FILE_HOSTS: Final = frozenset({"files.slack.com", "files.slack-gov.com"})
"""Where ``url_private`` points (commercial Slack and GovSlack)."""
MAX_FILE_BYTES: Final = 20 * 1024 * 1024
"""Largest reference image downloaded, bytes (as for Discord attachments and URLs)."""
FILES_READ_MISSING: Final = (
    "Slack sent its sign-in page instead of the file, which means the bananabot app lacks "
    "the files:read scope; a workspace admin must add files:read (OAuth & Permissions) "
    "and reinstall the app"
)
_MAX_REDIRECTS: Final = 3
_CHUNK: Final = 64 * 1024
_MAGIC: Final = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def is_image(file: Mapping[str, object]) -> bool:
    """Whether a Slack file object is a PNG, JPEG, WebP or GIF image (by ``mimetype``)."""
    return str(file.get("mimetype", "")).split(";")[0].strip().lower() in IMAGE_MIME_TYPES


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _looks_like_html(content_type: str, head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return content_type.startswith(("text/html", "application/xhtml")) or start.startswith(
        (b"<!doctype html", b"<html")
    )


class SlackFiles:
    """Fetches ``url_private`` with the bot token.

    Args:
        session: the adapter's HTTP session (no environment proxies, no redirects).
        token: the bot token (``xoxb-…``).
        hosts: host names (with ``:port`` when not default) allowed to receive the token.
        timeout: seconds for one download, redirects included.
        max_bytes: largest file, bytes.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        token: str,
        hosts: Iterable[str] = DEFAULT_FILE_HOSTS,
        timeout: float = 30.0,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self._session = session
        self._token = token
        self._hosts = frozenset(host.lower() for host in hosts)
        self._timeout = timeout
        self._max_bytes = max_bytes

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return (
            parts.scheme in ("https", "http")
            and parts.netloc.lower() in self._hosts
            and (parts.scheme == "https" or parts.hostname in ("127.0.0.1", "localhost", "::1"))
        )

    async def fetch(self, file: Mapping[str, object], index: int) -> bytes:
        """The bytes of a Slack file object, checked to be an image.

        Args:
            file: a file object from an event or ``files.info`` (``name``, ``mimetype``,
                ``size``, ``url_private_download`` / ``url_private``).
            index: the reference's position, for error messages.

        Raises:
            ReferenceImageError: not an image, too large, not hosted by Slack, the HTML
                sign-in page (missing ``files:read``), or the download failed.
        """
        name = str(file.get("name") or file.get("title") or "the file")
        if not is_image(file):
            raise ReferenceImageError(f"{name} is not a PNG, JPEG, WebP or GIF image", index)
        size = file.get("size")
        if isinstance(size, int) and size > self._max_bytes:
            raise ReferenceImageError(
                f"{name} is {size / 1048576:.1f} MiB; the limit is "
                f"{self._max_bytes // 1048576} MiB",
                index,
            )
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._download(url, name, index)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("Slack file download failed", extra={"error": type(exc).__name__})
            raise ReferenceImageError(f"{name} could not be downloaded from Slack", index) from exc

    async def _download(self, url: str, name: str, index: int) -> bytes:
        for _ in range(_MAX_REDIRECTS + 1):
            if not self._allowed(url):
                raise ReferenceImageError(f"{name} is not a file hosted by Slack", index)
            async with self._session.get(
                url,
                headers={"Authorization": f"Bearer {self._token}"},
                allow_redirects=False,
            ) as response:
                if response.status in (301, 302, 303, 307, 308):
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status != 200:
                    raise ReferenceImageError(
                        f"Slack answered HTTP {response.status} for {name}", index
                    )
                return await self._read(response, name, index)
        raise ReferenceImageError(f"{name}: too many redirects", index)

    async def _read(self, response: aiohttp.ClientResponse, name: str, index: int) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_bytes:
            raise ReferenceImageError(f"{name} is larger than the download limit", index)
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            total += len(chunk)
            if total > self._max_bytes:
                raise ReferenceImageError(f"{name} is larger than the download limit", index)
            chunks.append(chunk)
        data = b"".join(chunks)
        if _looks_like_html(response.content_type or "", data[:512]):
            raise ReferenceImageError(FILES_READ_MISSING, index)
        if not _looks_like_image(data[:16]):
            raise ReferenceImageError(f"{name} is not a PNG, JPEG, WebP or GIF image", index)
        return data
