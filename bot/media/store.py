"""A content-addressed media store on the local file system."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Final

from bot.errors import NotFound
from bot.interfaces import StoredMedia
from bot.media.images import EXTENSIONS, MAX_PIXELS, prepare_reference, probe

__all__ = ["KEY_PATTERN", "FileMediaStore"]

KEY_PATTERN: Final = re.compile(r"[0-9a-f]{64}\.(?:png|jpg|webp|gif)")
"""A media key: lowercase sha256 hex of the bytes, a dot, and the sniffed format's extension."""


class FileMediaStore:
    """Image bytes under ``root/<sha[:2]>/<sha256 hex>.<ext>``, written once, never changed.

    Implements :class:`bot.interfaces.MediaStore`. Keys are ``<64 lowercase hex>.<ext>``
    with ``ext`` one of ``png``, ``jpg``, ``webp``, ``gif``, taken from the sniffed format
    (never from a file name or a ``Content-Type``). File work runs in worker threads.
    """

    def __init__(self, root: Path, *, max_pixels: int = MAX_PIXELS) -> None:
        """Create a store.

        Args:
            root: the directory to keep files under (created on first write).
            max_pixels: the largest width x height :meth:`put_image` accepts, in pixels.
        """
        self._root = Path(root)
        self._max_pixels = max_pixels

    @property
    def root(self) -> Path:
        """The directory files are kept under."""
        return self._root

    async def put_image(self, data: bytes) -> StoredMedia:
        """Store encoded image bytes under their content address.

        The bytes are sniffed (PNG, JPEG, WebP or GIF) and size-checked, not decoded or
        re-encoded: callers that need clean bytes use
        :func:`bot.media.images.prepare_reference` first. Storing the same bytes twice
        writes once. Writes are atomic (temporary file + ``os.replace``), so a reader never
        sees a partial file.

        Args:
            data: the encoded image bytes.

        Returns:
            The key, mime type and stored width x height in pixels.

        Raises:
            bot.errors.ReferenceImageError: not an allowed image, or too many pixels.
            OSError: the file system refused the write.
        """
        return await asyncio.to_thread(self._put_sync, data)

    async def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``.

        Raises:
            bot.errors.NotFound: if ``key`` is malformed or nothing is stored under it.
        """
        target = self.path(key)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"no stored image {key}") from None

    async def derive_reference(self, key: str, max_side: int) -> StoredMedia:
        """A stored image as a reference: itself if its longest side is at most ``max_side``
        pixels, else a downscaled, re-encoded copy (stored under its own key).

        Raises:
            bot.errors.NotFound: if nothing is stored under ``key``.
        """
        data = await self.get(key)
        return await asyncio.to_thread(self._derive_sync, data, max_side)

    def _derive_sync(self, data: bytes, max_side: int) -> StoredMedia:
        info = probe(data, max_pixels=self._max_pixels)
        if max(info.width, info.height) > max_side:
            data = prepare_reference(data, max_side=max_side, max_pixels=self._max_pixels).data
        return self._put_sync(data)

    def _put_sync(self, data: bytes) -> StoredMedia:
        info = probe(data, max_pixels=self._max_pixels)
        key = f"{hashlib.sha256(data).hexdigest()}.{EXTENSIONS[info.format]}"
        _write_once(self.path(key), data)
        return StoredMedia(key=key, mime_type=info.mime_type, width=info.width, height=info.height)

    def path(self, key: str) -> Path:
        """Return where the file for ``key`` lives (it may not exist yet); does no I/O.

        The key must match :data:`KEY_PATTERN` exactly, so no key can name a path outside
        the root (``../../etc/passwd``, absolute paths, separators, upper case).

        Raises:
            bot.errors.NotFound: if ``key`` is not a well-formed media key.
        """
        if KEY_PATTERN.fullmatch(key) is None:
            raise NotFound("that is not a media key")
        return self._root / key[:2] / key


def _write_once(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically unless it exists (same key, same bytes)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
