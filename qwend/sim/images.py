"""Image data URLs for the sim (pure): decode, check the header, read the size."""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass


class ImageError(ValueError):
    """The image part cannot be used; ``str()`` says why."""


@dataclass(frozen=True)
class ImageInfo:
    """What the sim learnt about one image."""

    format: str
    """``png``, ``jpeg``, ``gif``, ``webp`` or ``url`` (a remote URL, not fetched)."""
    width: int | None
    """Pixels, when the header gives them."""
    height: int | None
    """Pixels, when the header gives them."""


def inspect_image_url(url: str) -> ImageInfo:
    """Decode a ``data:`` URL and read its header; remote URLs are accepted unfetched."""
    if url.startswith(("http://", "https://")):
        return ImageInfo("url", None, None)
    if not url.startswith("data:"):
        raise ImageError("image_url.url must be a data: URL or an http(s) URL")
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise ImageError("image data URL must look like data:image/<type>;base64,<data>")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"image data URL is not valid base64: {exc}") from None
    return inspect_image_bytes(data)


def inspect_image_bytes(data: bytes) -> ImageInfo:
    """Identify PNG, JPEG, GIF or WebP from the header and read the dimensions."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        if len(data) < 10:
            raise ImageError("GIF image is truncated")
        width, height = struct.unpack("<HH", data[6:10])
        return _sized("gif", width, height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    raise ImageError("image data is not a PNG, JPEG, GIF or WebP image")


def _sized(fmt: str, width: int, height: int) -> ImageInfo:
    if width <= 0 or height <= 0:
        raise ImageError(f"{fmt.upper()} image has an invalid size {width}x{height}")
    return ImageInfo(fmt, width, height)


def _png(data: bytes) -> ImageInfo:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("PNG image is truncated or has no IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return _sized("png", width, height)


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> ImageInfo:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("JPEG image is corrupt (bad marker)")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return _sized("jpeg", width, height)
        pos += 2 + length
    raise ImageError("JPEG image is truncated (no frame header)")


def _webp(data: bytes) -> ImageInfo:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return _sized("webp", width, height)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return _sized("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _sized("webp", width & 0x3FFF, height & 0x3FFF)
    raise ImageError("WebP image is truncated or of an unknown kind")


def solid_png(width: int, height: int, grey: int = 128) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` (for demos, tests and benchmarks)."""

    row = b"\x00" + bytes([grey]) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(raw)),
            chunk(b"IEND", b""),
        )
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    """A base64 ``data:`` URL of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
