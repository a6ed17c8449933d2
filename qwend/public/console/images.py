"""Images of a console chat request (pure): every one within the configured size.

The console page scales each picked, pasted or dropped image down to
``[public] console_image_max_side`` pixels on its longer side before sending it,
so anything larger reaching the server came from another client (or an old page):
it is refused with a message that says which image, how large it is and what the
limit is, rather than costing the multimodal lane thousands of image tokens.
Only ``data:`` URLs are read here; other URLs are the media URL policy's business.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterator, Mapping

from qwend.routing.media import content_parts

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG start-of-frame markers (the ones carrying the picture's size)."""


class ImageRefused(ValueError):
    """An image the console does not accept; ``str()`` is the message for the user."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, JPEG, GIF or WebP image; None when not recognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + int(length)
    return None


def _image_urls(doc: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    """``(param, url)`` of every ``image_url`` part of a chat body's messages."""
    for param, part in content_parts(doc):
        if not isinstance(part, Mapping) or part.get("type") != "image_url":
            continue
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str):
            yield f"{param}.image_url", url


def check_images(doc: Mapping[str, object], max_side: int) -> int:
    """The number of images in ``doc``; ImageRefused for one larger than ``max_side``."""
    count = 0
    for param, url in _image_urls(doc):
        count += 1
        if not url.startswith("data:"):
            continue
        header, _, payload = url[5:].partition(",")
        if not header.endswith(";base64"):
            raise ImageRefused(
                f"Image {count} is not a base64 data URL (data:image/TYPE;base64,...).", param
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageRefused(f"Image {count} is not valid base64.", param) from None
        size = image_size(data)
        if size is None:
            raise ImageRefused(
                f"Image {count} is not a PNG, JPEG, GIF or WebP image (or it is truncated).",
                param,
            )
        width, height = size
        if max(width, height) > max_side:
            raise ImageRefused(
                f"Image {count} is {width}x{height} pixels; the console accepts at most"
                f" {max_side} pixels on the longer side ([public] console_image_max_side)."
                " Scale it down first (the console page does this for you: reload it).",
                param,
            )
    return count
