"""Image data URLs (pure): formats, sizes and malformed input."""

from __future__ import annotations

import base64
import struct

import pytest

from qwend.sim.images import ImageError, data_url, inspect_image_bytes, inspect_image_url, solid_png


def webp(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_png_size() -> None:
    info = inspect_image_bytes(solid_png(300, 200))
    assert (info.format, info.width, info.height) == ("png", 300, 200)


def test_gif_size() -> None:
    info = inspect_image_bytes(b"GIF87a" + struct.pack("<HH", 640, 480) + b"\x00" * 4)
    assert (info.format, info.width, info.height) == ("gif", 640, 480)


def test_jpeg_size_after_other_segments() -> None:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof2 = b"\xff\xc2" + struct.pack(">HBHH", 17, 8, 720, 1280) + b"\x00" * 10
    info = inspect_image_bytes(b"\xff\xd8" + app0 + sof2)
    assert (info.format, info.width, info.height) == ("jpeg", 1280, 720)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (webp(b"VP8X", b"\x00" * 4 + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")),
         (100, 50)),
        (webp(b"VP8L", b"\x2f" + ((63) | (31 << 14)).to_bytes(4, "little")), (64, 32)),
        (webp(b"VP8 ", b"\x00" * 3 + b"\x9d\x01\x2a" + struct.pack("<HH", 320, 240)),
         (320, 240)),
    ],
)  # fmt: skip
def test_webp_sizes(data: bytes, size: tuple[int, int]) -> None:
    info = inspect_image_bytes(data)
    assert (info.format, info.width, info.height) == ("webp", *size)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        solid_png(4, 4)[:16],
        b"GIF89a\x01",
        b"\xff\xd8\xff\xe0\x00\x10",
        b"\xff\xd8\x00\x00\x00\x00",
        b"GIF89a" + struct.pack("<HH", 0, 10),
        webp(b"VP8Z", b"\x00" * 10),
    ],
)
def test_malformed_images_raise(data: bytes) -> None:
    with pytest.raises(ImageError):
        inspect_image_bytes(data)


def test_urls() -> None:
    assert inspect_image_url(data_url(solid_png(28, 56))).height == 56
    assert inspect_image_url("https://example.com/cat.png").format == "url"
    with pytest.raises(ImageError, match="base64"):
        inspect_image_url("data:image/png;base64,@@@")
    with pytest.raises(ImageError, match="data:image"):
        inspect_image_url("data:image/png," + base64.b64encode(b"x").decode())
    with pytest.raises(ImageError, match="data: URL"):
        inspect_image_url("file:///etc/passwd")
