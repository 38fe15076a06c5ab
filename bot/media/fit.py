"""Fit a result image under a platform's upload limit without changing its pixel size."""

from __future__ import annotations

from dataclasses import dataclass

from bot.media.images import EXTENSIONS, MAX_PIXELS, decode, encode, probe

__all__ = ["FittedImage", "fit_upload"]

# Measured in shared/reference/reliability-security-perf.md §5.3: JPEG q90 keeps a 4K image
# at 1-3 MiB in ~0.2-0.4 s; WebP is ~6x slower for 25-50 % smaller files, so JPEG goes first.
_JPEG_QUALITIES = (90, 80, 70, 60, 50)
_WEBP_QUALITIES = (75, 60)


@dataclass(frozen=True, slots=True)
class FittedImage:
    """Bytes ready to upload.

    Attributes:
        data: encoded bytes, at most the limit.
        mime_type: ``image/png``, ``image/jpeg`` or ``image/webp``.
        extension: ``png``, ``jpg`` or ``webp``.
        reencoded: True when the bytes differ from the original.
    """

    data: bytes
    mime_type: str
    extension: str
    reencoded: bool


def fit_upload(
    data: bytes, limit_bytes: int, *, max_pixels: int = MAX_PIXELS
) -> FittedImage | None:
    """The original if it fits ``limit_bytes``, else a JPEG (then WebP) re-encoding at the same
    width x height with quality stepped down; None if nothing fits. CPU-bound: call it in a
    thread (``asyncio.to_thread``).

    Args:
        data: the stored result image.
        limit_bytes: the platform's per-file upload limit (Discord: ``filesize_limit``,
            10 MiB by default).

    Raises:
        bot.errors.ReferenceImageError: the bytes are not an allowed image.
    """
    info = probe(data, max_pixels=max_pixels)
    if len(data) <= limit_bytes:
        ext = EXTENSIONS[info.format]
        return FittedImage(data, info.mime_type, ext, reencoded=False)
    image = decode(data, max_pixels=max_pixels)
    try:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        for quality in _JPEG_QUALITIES:
            candidate = encode(image, "JPEG", quality=quality)
            if len(candidate) <= limit_bytes:
                return FittedImage(candidate, "image/jpeg", "jpg", reencoded=True)
        for quality in _WEBP_QUALITIES:
            candidate = encode(image, "WEBP", quality=quality, fast=True)
            if len(candidate) <= limit_bytes:
                return FittedImage(candidate, "image/webp", "webp", reencoded=True)
    finally:
        image.close()
    return None
