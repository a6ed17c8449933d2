"""The console's image checks (pure): sizes read from the headers, limits enforced."""

from __future__ import annotations

import base64
import struct

import pytest

from qwend.public.console.images import ImageRefused, check_images, image_size
from qwend.sim.images import solid_png


def jpeg(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, then a baseline frame header (all the check reads)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + bytes(3)
    return b"\xff\xd8" + app0 + sof


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + bytes(4)


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + bytes(4)
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (solid_png(300, 200), (300, 200)),
        (jpeg(4032, 3024), (4032, 3024)),
        (gif(17, 9), (17, 9)),
        (webp_vp8x(1600, 900), (1600, 900)),
        (b"not an image at all", None),
        (b"\x89PNG\r\n\x1a\n", None),  # truncated
    ],
)
def test_sizes_come_from_the_headers(data: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(data) == size


def doc(*images: bytes, url: str | None = None) -> dict[str, object]:
    parts: list[dict[str, object]] = [{"type": "text", "text": "look"}]
    for data in images:
        encoded = base64.b64encode(data).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:image/x;base64,{encoded}"}})
    if url is not None:
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": parts}]}


def test_images_within_the_limit_are_counted() -> None:
    assert (
        check_images(doc(solid_png(64, 64), jpeg(512, 100), url="https://example.com/a.png"), 512)
        == 3
    )
    assert check_images({"messages": "nonsense"}, 512) == 0


def test_the_refusal_names_the_image_its_size_and_the_limit() -> None:
    with pytest.raises(ImageRefused) as refused:
        check_images(doc(solid_png(64, 64), jpeg(4032, 3024)), 1536)
    assert str(refused.value).startswith("Image 2 is 4032x3024 pixels")
    assert "at most 1536 pixels" in str(refused.value)
    assert refused.value.param == "messages[1].content[2].image_url"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/png,rawbytes", "not a base64 data URL"),
        ("data:image/png;base64,@@@", "not valid base64"),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "not a PNG, JPEG"),
    ],
)
def test_broken_data_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ImageRefused, match=message):
        check_images(doc(url=url), 1536)
