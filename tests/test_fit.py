"""Results over an upload limit are re-encoded at the same pixel size."""

from __future__ import annotations

import io
import os

from PIL import Image

from bot.media.fit import fit_upload

MIB = 1024 * 1024


def noise_png(width: int, height: int) -> bytes:
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_a_12_mib_png_fits_under_10_mib_keeping_its_pixels() -> None:
    data = noise_png(2048, 2048)
    assert len(data) > 12 * MIB
    fitted = fit_upload(data, 10 * MIB)
    assert fitted is not None and fitted.reencoded
    assert len(fitted.data) <= 10 * MIB
    with Image.open(io.BytesIO(fitted.data)) as image:
        assert image.size == (2048, 2048)
        assert image.format == "JPEG"


def test_an_image_within_the_limit_is_sent_as_is() -> None:
    data = noise_png(64, 64)
    fitted = fit_upload(data, 10 * MIB)
    assert fitted is not None and fitted.data == data and not fitted.reencoded
    assert (fitted.mime_type, fitted.extension) == ("image/png", "png")


def test_nothing_fits_an_impossible_limit() -> None:
    assert fit_upload(noise_png(256, 256), 1024) is None
