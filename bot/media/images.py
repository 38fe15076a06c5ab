"""Pillow helpers for untrusted image bytes: sniff and size-check, decode, downscale, re-encode."""

from __future__ import annotations

import struct
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from types import MappingProxyType
from typing import Final

from PIL import Image, ImageCms, ImageFile, ImageOps

from bot.errors import ReferenceImageError

__all__ = [
    "ALLOWED_FORMATS",
    "EXTENSIONS",
    "EXTENSION_FOR_MIME",
    "MAX_PIXELS",
    "MIME_FOR_EXTENSION",
    "MIME_TYPES",
    "ImageInfo",
    "PreparedImage",
    "decode",
    "encode",
    "fit_size",
    "prepare_reference",
    "probe",
]

ALLOWED_FORMATS: Final = ("PNG", "JPEG", "WEBP", "GIF")
"""Pillow format names we ever open; every other decoder (FITS, TIFF, BMP...) stays shut."""

MAX_PIXELS: Final = 40_000_000
"""Default pixel limit (width x height) for untrusted images: 40 megapixels."""

MIME_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
)
"""Format name -> mime type, for the formats in :data:`ALLOWED_FORMATS`."""

EXTENSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}
)
"""Format name -> file extension (no dot), for the formats in :data:`ALLOWED_FORMATS`."""

EXTENSION_FOR_MIME: Final[Mapping[str, str]] = MappingProxyType(
    {MIME_TYPES[name]: EXTENSIONS[name] for name in MIME_TYPES}
)
"""Mime type -> file extension (``image/jpeg`` -> ``jpg``)."""

MIME_FOR_EXTENSION: Final[Mapping[str, str]] = MappingProxyType(
    {EXTENSIONS[name]: MIME_TYPES[name] for name in MIME_TYPES}
)
"""File extension -> mime type (``jpg`` -> ``image/jpeg``), as media keys end."""

_NOT_AN_IMAGE = "this file is not a PNG, JPEG, WebP or GIF image"
_DISPLAY_NAMES: Final = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "GIF": "GIF"}
_ENCODE_ALIASES: Final = {"JPG": "JPEG", "JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}

# warnings.catch_warnings swaps the process-wide filter list and is not thread-safe; probes
# run in worker threads, so our own uses are serialised (it is held for header parsing only).
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image's header declares.

    Attributes:
        format: one of :data:`ALLOWED_FORMATS` (a JPEG with MPO data reports ``"JPEG"``).
        mime_type: ``image/png``, ``image/jpeg``, ``image/webp`` or ``image/gif``.
        width: pixels, as stored (before any EXIF orientation is applied).
        height: pixels, as stored.
    """

    format: str
    mime_type: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A re-encoded reference image ready to store and send to a provider.

    Attributes:
        data: encoded bytes (PNG or JPEG), without EXIF, XMP, text chunks or ICC profile.
        mime_type: ``image/png`` (the image has transparency) or ``image/jpeg``.
        width: pixels, upright, after downscaling.
        height: pixels, upright, after downscaling.
    """

    data: bytes
    mime_type: str
    width: int
    height: int


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ReferenceImageError(f"the image declares {width}x{height} pixels, which is empty")
    if width * height > max_pixels:
        raise ReferenceImageError(
            f"the image declares {width}x{height} pixels; the limit is "
            f"{_megapixels(max_pixels)} megapixels"
        )


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP file declares in its first chunk (RFC 9649 §2.5-2.7), or None."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8X" and len(data) >= 30:
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _open(data: bytes, max_pixels: int) -> tuple[ImageFile.ImageFile, str]:
    """Identify ``data`` among the allowed formats and check its declared size; decode nothing.

    This walks Pillow's own plugin table the way ``Image.open(fp, formats=ALLOWED_FORMATS)``
    does, minus ``Image.open``'s process-global ``MAX_IMAGE_PIXELS`` check: that check raises
    before the size is known for very large headers, so our own limit (and a message naming
    the declared size) could not apply. Plugins that run Pillow's check themselves (GIF frame
    extents, WebP canvases, MPO) still do, with its warning turned into an error. A WebP's
    canvas size is read from its RIFF header and checked before libwebp sees the file.
    """
    prefix = data[:16]
    for fmt in ALLOWED_FORMATS:
        if fmt not in Image.OPEN:
            Image.init()
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept is not None else True
        # A str verdict means "recognised, but this Pillow build lacks the codec".
        if not verdict or isinstance(verdict, str):
            continue
        if fmt == "WEBP":
            # libwebp allocates the whole canvas (twice) as soon as the file is opened.
            canvas = _webp_canvas_size(data)
            if canvas is None:
                raise ReferenceImageError("this WebP image is damaged and cannot be read")
            _check_size(canvas, max_pixels)
        try:
            with (
                _WARNINGS_LOCK,
                warnings.catch_warnings(action="error", category=Image.DecompressionBombWarning),
            ):
                image = factory(BytesIO(data), "")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ReferenceImageError(
                f"the image declares more pixels than the limit of "
                f"{_megapixels(max_pixels)} megapixels"
            ) from exc
        except Exception as exc:
            raise ReferenceImageError(
                f"this {_DISPLAY_NAMES[fmt]} image is damaged and cannot be read"
            ) from exc
        try:
            _check_size(image.size, max_pixels)
        except ReferenceImageError:
            image.close()
            raise
        return image, fmt
    raise ReferenceImageError(_NOT_AN_IMAGE)


def probe(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Sniff an image's format and declared size from its header, without decoding pixels.

    Only PNG, JPEG, WebP and GIF are tried (reliability-security-perf.md §3.2: restrict the
    decoders, check the size before ``load()``); whatever a header or ``Content-Type`` claims
    is ignored. A small file that declares 50,000 x 50,000 pixels is refused here.

    Args:
        data: the encoded image bytes.
        max_pixels: the largest width x height accepted, in pixels.

    Returns:
        The format, mime type and stored width x height in pixels.

    Raises:
        ReferenceImageError: not an allowed format, damaged header, or too many pixels; the
            message is written for the person who sent the image.
    """
    image, fmt = _open(data, max_pixels)
    with image:
        width, height = image.size
    return ImageInfo(fmt, MIME_TYPES[fmt], width, height)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale (width, height) in pixels so the longest side is at most ``max_side``.

    Keeps the aspect ratio (rounded to whole pixels, never below 1); never enlarges.
    """
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode(
    data: bytes, *, max_pixels: int = MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """Validate and fully decode an image: first frame only, EXIF orientation applied.

    Args:
        data: the encoded image bytes.
        max_pixels: the largest declared width x height accepted, in pixels.
        max_side: if given, the caller will downscale to this longest side (pixels), so a
            JPEG may be decoded at a reduced DCT scale that is still at least that large.

    Returns:
        A loaded image in the file's own mode (``P``, ``RGB``, ``RGBA``, ``CMYK``...), upright.

    Raises:
        ReferenceImageError: as :func:`probe`, or the pixel data is truncated or damaged.
    """
    image, fmt = _open(data, max_pixels)
    try:
        if max_side is not None:
            image.draft(None, fit_size(image.width, image.height, max_side))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as exc:
        image.close()
        raise ReferenceImageError(
            f"this {_DISPLAY_NAMES[fmt]} image is truncated or damaged and cannot be read"
        ) from exc
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels with an embedded ICC profile to sRGB (best effort), so it can be dropped."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if image.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # a broken profile: keep the pixels as they are
    return converted if converted is not None else image


def _rgb_or_rgba(image: Image.Image) -> Image.Image:
    """RGBA if any pixel is not fully opaque, else RGB (8 bits per channel)."""
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit and float greyscale: scale to 8 bits instead of clipping at 255.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema() != (255, 255):
            return rgba
        return rgba.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def encode(image: Image.Image, fmt: str, *, quality: int = 92, fast: bool = False) -> bytes:
    """Encode an image without metadata (no EXIF, XMP, text chunks or ICC profile).

    Args:
        image: any mode; JPEG output converts to RGB (alpha is dropped), PNG/WebP keep alpha.
        fmt: ``"PNG"``, ``"JPEG"`` (or ``"JPG"``) or ``"WEBP"``, any case.
        quality: JPEG/WebP quality, 1..100 (ignored for PNG).
        fast: trade size for speed (PNG zlib level 1, WebP method 0) for large images.

    Returns:
        The encoded bytes. Same pixels and arguments give the same bytes.

    Raises:
        ValueError: for a format other than PNG, JPEG or WebP.
    """
    target = _ENCODE_ALIASES.get(fmt.upper())
    if target is None:
        raise ValueError(f"cannot encode images as {fmt!r}; use PNG, JPEG or WEBP")
    buffer = BytesIO()
    if target == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(buffer, "JPEG", quality=quality)
    elif target == "PNG":
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        # icc_profile=None: the PNG encoder would otherwise copy image.info's profile.
        image.save(buffer, "PNG", compress_level=1 if fast else 6, icc_profile=None)
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        image.save(buffer, "WEBP", quality=quality, method=0 if fast else 4)
    return buffer.getvalue()


def prepare_reference(
    data: bytes, *, max_side: int = 2048, max_pixels: int = MAX_PIXELS
) -> PreparedImage:
    """Turn untrusted reference-image bytes into a clean, bounded image for providers.

    Validates with :func:`probe`, decodes the first frame (GIF, APNG), applies the EXIF
    orientation, converts an embedded ICC profile to sRGB, downscales so the longest side is
    at most ``max_side`` pixels (Lanczos), and re-encodes: PNG if any pixel is transparent,
    else JPEG quality 92.

    Every image is re-encoded, even one already within limits: that is what strips EXIF
    (GPS position, camera serials), XMP and text chunks, and it proves the whole pixel
    stream decodes before a provider is paid to read it. The cost is bounded (at most
    2048 x 2048 pixels to encode) and runs in a worker thread.

    Args:
        data: the encoded image bytes as received.
        max_side: the longest side of the result, in pixels (Nano Banana references: 2048).
        max_pixels: the largest declared width x height accepted, in pixels.

    Returns:
        The re-encoded bytes, their mime type and their upright width x height in pixels.

    Raises:
        ReferenceImageError: not an allowed format, too many pixels, truncated or damaged.
        ValueError: if ``max_side`` is below 1.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    image = decode(data, max_pixels=max_pixels, max_side=max_side)
    try:
        with image:
            clean = _rgb_or_rgba(_to_srgb(image))
            target = fit_size(clean.width, clean.height, max_side)
            if target != clean.size:
                clean = clean.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
            fmt = "PNG" if clean.mode == "RGBA" else "JPEG"
            encoded = encode(clean, fmt, quality=92)
    except Exception as exc:
        raise ReferenceImageError("this image could not be processed; try another file") from exc
    return PreparedImage(encoded, MIME_TYPES[fmt], clean.width, clean.height)
