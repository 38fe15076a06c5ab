"""Tests for bot.media: image sniffing and bombs, reference preparation, the store, fetching."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import warnings
import zlib
from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from PIL import Image, ImageCms

from bot.errors import NotFound, ReferenceImageError
from bot.interfaces import StoredMedia
from bot.media.images import (
    MAX_PIXELS,
    encode,
    fit_size,
    prepare_reference,
    probe,
)
from bot.media.references import fetch_reference, load_reference, safe_url
from bot.media.store import FileMediaStore

# --- image fixtures ----------------------------------------------------------------------------


def make_image(
    fmt: str, size: tuple[int, int] = (64, 48), *, mode: str = "RGB", **save: object
) -> bytes:
    color: tuple[int, ...] = (200, 40, 40, 128) if mode == "RGBA" else (200, 40, 40)
    buffer = BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **save)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares width x height (8-bit RGB); its IDAT holds almost nothing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF with a 1x1 screen whose first frame claims width x height (it enlarges the image)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return screen + frame + b";"


def webp_declaring(width: int, height: int) -> bytes:
    """A WebP VP8X header declaring a width x height canvas, with no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def jpeg_with_orientation(orientation: int) -> bytes:
    """A 200x100 JPEG, left half red and right half blue, with an EXIF Orientation tag."""
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # Make: must not survive re-encoding
    buffer = BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def near(pixel: object, expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel[:3], expected, strict=True))


# --- probe ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_probe_accepts_allowed_formats(fmt: str, mime: str) -> None:
    info = probe(make_image(fmt, (64, 48)))
    assert (info.format, info.mime_type, info.width, info.height) == (fmt, mime, 64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file\n" * 20,
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10"/></svg>',
        b"",
        make_image("BMP"),
        make_image("TIFF"),
    ],
    ids=["text", "svg", "empty", "bmp", "tiff"],
)
def test_probe_refuses_other_formats(data: bytes) -> None:
    with pytest.raises(ReferenceImageError, match="not a PNG, JPEG, WebP or GIF image"):
        probe(data)


def test_png_declaring_50000_square_is_refused_without_decoding() -> None:
    bomb = png_declaring(50_000, 50_000)
    assert len(bomb) < 200
    started = time.perf_counter()
    with pytest.raises(ReferenceImageError) as caught:
        probe(bomb, max_pixels=MAX_PIXELS)
    assert time.perf_counter() - started < 1.0
    assert "50000x50000" in caught.value.message
    assert "40 megapixels" in caught.value.message
    with pytest.raises(ReferenceImageError, match="50000x50000"):
        prepare_reference(bomb, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    "bomb",
    [
        png_declaring(8_000, 8_000),  # 64 MP: ours refuses, Pillow's 89 MP limit would not
        gif_declaring(10_000, 10_000),  # 100 MP: Pillow's DecompressionBombWarning, as an error
        gif_declaring(65_535, 65_535),  # Pillow's DecompressionBombError
        webp_declaring(16_384, 16_384),  # checked before libwebp allocates the canvas
        webp_declaring(8_000, 8_000),
    ],
    ids=["png-64mp", "gif-100mp", "gif-4gp", "webp-268mp", "webp-64mp"],
)
def test_pixel_bombs_are_refused_quickly(bomb: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(ReferenceImageError, match="pixels"):
        prepare_reference(bomb)
    assert time.perf_counter() - started < 1.0


def test_max_pixels_is_honoured() -> None:
    data = make_image("PNG", (100, 100))
    assert probe(data, max_pixels=10_000).width == 100
    with pytest.raises(ReferenceImageError, match=r"100x100 pixels; the limit is 0\.009"):
        probe(data, max_pixels=9_000)


# --- prepare_reference ---------------------------------------------------------------------------


def test_large_image_is_downscaled_to_2048() -> None:
    prepared = prepare_reference(make_image("PNG", (3000, 1500)))
    assert (prepared.width, prepared.height) == (2048, 1024)
    assert prepared.mime_type == "image/jpeg"
    with Image.open(BytesIO(prepared.data)) as image:
        assert image.format == "JPEG"
        assert image.size == (2048, 1024)


def test_large_jpeg_is_downscaled_to_exact_size() -> None:
    prepared = prepare_reference(make_image("JPEG", (4000, 3000)), max_side=1000)
    assert (prepared.width, prepared.height) == (1000, 750)


def test_exif_rotated_jpeg_is_made_upright_and_metadata_stripped() -> None:
    prepared = prepare_reference(jpeg_with_orientation(6))  # "rotate 90° clockwise to view"
    assert (prepared.width, prepared.height) == (100, 200)
    with Image.open(BytesIO(prepared.data)) as image:
        assert image.size == (100, 200)
        rgb = image.convert("RGB")
        assert near(rgb.getpixel((50, 20)), (255, 0, 0))  # the left (red) half is now on top
        assert near(rgb.getpixel((50, 180)), (0, 0, 255))
        assert not image.getexif()
    assert b"SecretCam" not in prepared.data


def test_small_image_is_still_reencoded_without_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    original = make_image("JPEG", (40, 30), exif=exif)
    assert b"SecretCam" in original
    prepared = prepare_reference(original)
    assert prepared.data != original
    assert b"SecretCam" not in prepared.data
    assert b"Exif" not in prepared.data


def test_transparency_keeps_png_and_opaque_alpha_becomes_jpeg() -> None:
    translucent = prepare_reference(make_image("PNG", mode="RGBA"))
    assert translucent.mime_type == "image/png"
    with Image.open(BytesIO(translucent.data)) as image:
        assert image.mode == "RGBA"
    opaque = Image.new("RGBA", (30, 30), (10, 200, 10, 255))
    buffer = BytesIO()
    opaque.save(buffer, "PNG")
    assert prepare_reference(buffer.getvalue()).mime_type == "image/jpeg"


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_reference(buffer.getvalue())
    with Image.open(BytesIO(prepared.data)) as image:
        assert near(image.convert("RGB").getpixel((20, 20)), (255, 0, 0))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_refused(fmt: str) -> None:
    # A noisy picture, so half the file is half the pixel data.
    noisy = Image.effect_noise((300, 300), 60).convert("RGB")
    buffer = BytesIO()
    noisy.save(buffer, fmt)
    data = buffer.getvalue()
    with pytest.raises(ReferenceImageError, match="truncated or damaged"):
        prepare_reference(data[: len(data) // 2])


def test_16_bit_greyscale_png_is_scaled_not_clipped() -> None:
    buffer = BytesIO()
    Image.new("I;16", (20, 20), 32768).save(buffer, "PNG")
    prepared = prepare_reference(buffer.getvalue())
    with Image.open(BytesIO(prepared.data)) as image:
        assert near(image.convert("RGB").getpixel((5, 5)), (128, 128, 128), 3)


def test_fit_size_and_encode() -> None:
    assert fit_size(3000, 1500, 2048) == (2048, 1024)
    assert fit_size(100, 50, 2048) == (100, 50)
    assert fit_size(1, 10_000, 100) == (1, 100)
    image = Image.new("RGBA", (10, 10), (1, 2, 3, 4))
    for fmt, expected in (("JPG", "JPEG"), ("png", "PNG"), ("WEBP", "WEBP")):
        with Image.open(BytesIO(encode(image, fmt))) as decoded:
            assert decoded.format == expected
    with pytest.raises(ValueError, match="cannot encode"):
        encode(image, "GIF")


# --- the store -----------------------------------------------------------------------------------


async def test_store_round_trips_and_is_content_addressed(tmp_path: Path) -> None:
    store = FileMediaStore(tmp_path / "media")
    data = make_image("PNG", (33, 22))
    stored = await store.put_image(data)
    assert stored.mime_type == "image/png"
    assert (stored.width, stored.height) == (33, 22)
    digest, ext = stored.key.split(".")
    assert len(digest) == 64 and ext == "png"
    assert store.path(stored.key) == tmp_path / "media" / digest[:2] / stored.key
    assert await store.get(stored.key) == data
    again = await store.put_image(data)
    assert again == stored
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert files == [store.path(stored.key)]  # written once, no temporary files left
    jpeg = await store.put_image(make_image("JPEG"))
    assert jpeg.key.endswith(".jpg") and jpeg.mime_type == "image/jpeg"


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a" * 64 + ".png/../../x",
        "A" * 64 + ".png",
        "a" * 63 + ".png",
        "a" * 64 + ".svg",
        "a" * 64,
        "",
        "..",
    ],
)
async def test_store_refuses_bad_keys(tmp_path: Path, key: str) -> None:
    store = FileMediaStore(tmp_path)
    with pytest.raises(NotFound):
        store.path(key)
    with pytest.raises(NotFound):
        await store.get(key)


async def test_store_get_missing_and_refuse_non_images(tmp_path: Path) -> None:
    store = FileMediaStore(tmp_path)
    with pytest.raises(NotFound):
        await store.get("0" * 64 + ".png")
    with pytest.raises(ReferenceImageError):
        await store.put_image(b"just text")
    with pytest.raises(ReferenceImageError, match="50000x50000"):
        await store.put_image(png_declaring(50_000, 50_000))
    assert not any(await asyncio.to_thread(lambda: list(tmp_path.iterdir())))


# --- fetching ------------------------------------------------------------------------------------

PNG_BYTES = make_image("PNG", (120, 80))


class ImageServer:
    """A local aiohttp server with one route per fetch behaviour under test."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/image.png", self.image)
        app.router.add_get("/missing", self.missing)
        app.router.add_get("/big-declared", self.big_declared)
        app.router.add_get("/big-streamed", self.big_streamed)
        app.router.add_get("/page.html", self.page)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/gzip", self.gzip)
        app.router.add_get("/redirect/{hops}", self.redirect)
        app.router.add_get("/to-ftp", self.to_ftp)
        return app

    async def image(self, request: web.Request) -> web.Response:
        return web.Response(body=PNG_BYTES, content_type="image/png")

    async def missing(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such image")

    async def big_declared(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\x00" * 5000, content_type="image/png")

    async def big_streamed(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"\x00" * 1024)
        await response.write_eof()
        return response

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>not an image</body></html>", content_type="text/html")

    async def slow(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 10)
        return web.Response(body=PNG_BYTES, content_type="image/png")

    async def gzip(self, request: web.Request) -> web.Response:
        body = zlib.compress(PNG_BYTES)
        return web.Response(body=body, headers={"Content-Encoding": "deflate"})

    async def redirect(self, request: web.Request) -> web.Response:
        hops = int(request.match_info["hops"])
        target = "/image.png" if hops <= 1 else f"/redirect/{hops - 1}"
        raise web.HTTPFound(target)

    async def to_ftp(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://127.0.0.1/image.png")


@pytest.fixture
async def server() -> AsyncIterator[ImageServer]:
    images = ImageServer()
    runner = web.AppRunner(images.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    images.base = f"http://{host}:{port}"
    try:
        yield images
    finally:
        images.release.set()
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
        yield http


async def test_fetch_returns_image_bytes(server: ImageServer, client: httpx.AsyncClient) -> None:
    assert await fetch_reference(f"{server.base}/image.png", client) == PNG_BYTES


async def test_fetch_follows_up_to_three_redirects(
    server: ImageServer, client: httpx.AsyncClient
) -> None:
    assert await fetch_reference(f"{server.base}/redirect/3", client) == PNG_BYTES
    with pytest.raises(ReferenceImageError, match="redirected more than 3 times"):
        await fetch_reference(f"{server.base}/redirect/4", client)
    with pytest.raises(ReferenceImageError, match="cannot be used"):
        await fetch_reference(f"{server.base}/to-ftp", client)


async def test_fetch_404_names_host_but_not_query(
    server: ImageServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ReferenceImageError) as caught:
        await fetch_reference(f"{server.base}/missing?token=SECRET123", client)
    assert "127.0.0.1" in caught.value.message
    assert "404" in caught.value.message
    assert "SECRET123" not in caught.value.message
    assert "SECRET123" not in str(caught.value)


async def test_fetch_refuses_oversize_bodies(
    server: ImageServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ReferenceImageError, match="limit"):
        await fetch_reference(f"{server.base}/big-declared", client, max_bytes=1000)
    with pytest.raises(ReferenceImageError, match="larger than the limit"):
        await fetch_reference(f"{server.base}/big-streamed", client, max_bytes=10_000)


async def test_fetch_times_out(server: ImageServer, client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    with pytest.raises(ReferenceImageError, match=r"within 0\.2 seconds"):
        await fetch_reference(f"{server.base}/slow", client, timeout=0.2)
    assert time.perf_counter() - started < 2.0


async def test_fetch_refuses_compressed_bodies(
    server: ImageServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ReferenceImageError, match="compressed"):
        await fetch_reference(f"{server.base}/gzip", client)


async def test_fetch_unreachable_host_is_a_reference_error(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe_socket:  # a port that was free a moment ago: refused
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    with pytest.raises(ReferenceImageError, match=r"127\.0\.0\.1") as caught:
        await fetch_reference(f"http://127.0.0.1:{port}/x.png?sig=abc", client, timeout=5)
    assert "sig=abc" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/cat.png",
        "gopher://example.com/",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "http://",
        "http://[::1",
    ],
)
async def test_fetch_refuses_non_http_links(url: str, client: httpx.AsyncClient) -> None:
    with pytest.raises(ReferenceImageError):
        await fetch_reference(url, client)


def test_safe_url_drops_query_and_credentials() -> None:
    assert safe_url("https://u:pw@cdn.example.com:8443/a/b.png?sig=x#y") == (
        "https://cdn.example.com:8443/a/b.png"
    )
    assert safe_url("ftp://example.com/a") == ""


# --- load_reference ------------------------------------------------------------------------------


class MemorySink:
    """Keeps what load_reference stores, like a media store would."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []

    async def put_image(self, data: bytes) -> StoredMedia:
        info = probe(data)
        self.stored.append(data)
        return StoredMedia(f"{len(self.stored):064x}.jpg", info.mime_type, info.width, info.height)


async def test_load_reference_from_url(server: ImageServer, client: httpx.AsyncClient) -> None:
    sink = MemorySink()
    reference = await load_reference(
        f"{server.base}/image.png?token=abc", client=client, media=sink
    )
    assert reference.source == f"{server.base}/image.png"
    assert (reference.width, reference.height) == (120, 80)
    assert reference.mime_type == "image/jpeg"
    assert len(sink.stored) == 1


async def test_load_reference_from_html_page_is_refused(
    server: ImageServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ReferenceImageError, match="not a PNG, JPEG, WebP or GIF image") as caught:
        await load_reference(f"{server.base}/page.html", client=client, media=MemorySink(), index=2)
    assert caught.value.index == 2


async def test_load_reference_from_bytes_and_file(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    store = FileMediaStore(tmp_path / "media")
    from_bytes = await load_reference(make_image("WEBP", (3000, 1000)), client=client, media=store)
    assert (from_bytes.width, from_bytes.height) == (2048, 683)
    assert from_bytes.source == ""
    assert from_bytes.media_key.endswith(".jpg")
    assert (await store.get(from_bytes.media_key))[:3] == b"\xff\xd8\xff"

    picture = tmp_path / "holiday.jpg"
    picture.write_bytes(jpeg_with_orientation(8))
    from_file = await load_reference(str(picture), client=client, media=store)
    assert from_file.source == "holiday.jpg"
    assert (from_file.width, from_file.height) == (100, 200)
    from_path = await load_reference(picture, client=client, media=store)
    assert from_path.media_key == from_file.media_key

    with pytest.raises(ReferenceImageError, match="no file named"):
        await load_reference(str(tmp_path / "nope.png"), client=client, media=store)
    with pytest.raises(ReferenceImageError, match="http or https"):
        await load_reference(str(picture), client=client, media=store, allow_files=False)
    with pytest.raises(ReferenceImageError, match="only http and https"):
        await load_reference("file:///etc/passwd", client=client, media=store)


def test_icc_profile_is_converted_and_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with_profile = make_image("JPEG", (40, 30), icc_profile=srgb)
    prepared = prepare_reference(with_profile)
    with Image.open(BytesIO(prepared.data)) as image:
        assert "icc_profile" not in image.info


def test_bomb_check_leaves_warning_filters_as_they_were() -> None:
    before = list(warnings.filters)
    with pytest.raises(ReferenceImageError):
        probe(gif_declaring(10_000, 10_000))
    assert warnings.filters == before
