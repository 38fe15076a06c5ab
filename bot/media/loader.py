"""The :class:`bot.interfaces.ReferenceLoader` the composition root gives the service."""

from __future__ import annotations

import httpx

from bot.interfaces import MediaStore
from bot.media.references import load_reference
from bot.models import ReferenceImage

__all__ = ["MediaReferenceLoader"]


class MediaReferenceLoader:
    """Loads references over ``client`` into ``media``: validated, downscaled, stored.

    A ``str`` source must be an http(s) URL: text from a chat message must never make the
    bot read its own disk, so callers read local files themselves and pass the bytes.

    Args:
        max_side: longest side of a stored reference, pixels (Runware stores at most 2048).
        max_pixels: decompression-bomb limit, pixels, checked before decoding.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        media: MediaStore,
        max_side: int = 2048,
        max_pixels: int = 40_000_000,
    ) -> None:
        self._client = client
        self._media = media
        self._max_side = max_side
        self._max_pixels = max_pixels

    async def load(self, source: bytes | str, index: int = -1) -> ReferenceImage:
        return await load_reference(
            source,
            client=self._client,
            media=self._media,
            max_side=self._max_side,
            max_pixels=self._max_pixels,
            allow_files=False,
            index=index,
        )
