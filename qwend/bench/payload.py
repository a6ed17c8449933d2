"""Request bodies of the benchmark (pure): OpenAI chat completions for a request shape."""

from __future__ import annotations

import base64
import struct
import zlib
from functools import cache

from qwend.bench.scenarios import FILLER, IMAGE_PROMPT, TEXT_PROMPT, RequestShape

IMAGE_SIDE = 448
"""The seed's image size (256 image tokens for Qwen3.5's vision encoder)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def image_data_url(side: int = IMAGE_SIDE) -> str:
    """A solid grey RGB PNG of ``side`` x ``side`` pixels as a data URL."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    raw = (b"\x00" + b"\x80\x80\x80" * side) * side
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def prompt_text(shape: RequestShape) -> str:
    """The text prompt: the seed's, after ``prompt_words`` words of padding."""
    if shape.image:
        return IMAGE_PROMPT
    words = FILLER.split()
    padding = " ".join(words[i % len(words)] for i in range(shape.prompt_words))
    return f"{padding}\n\n{TEXT_PROMPT}" if padding else TEXT_PROMPT


def chat_body(shape: RequestShape, model: str, *, stream: bool | None = None) -> dict[str, object]:
    """A chat completion request for ``shape`` (``stream`` overrides the shape's)."""
    streaming = shape.stream if stream is None else stream
    content: object = prompt_text(shape)
    if shape.image:
        content = [
            {"type": "text", "text": content},
            {"type": "image_url", "image_url": {"url": image_data_url()}},
        ]
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": shape.max_tokens,
        "temperature": 0,
        "stream": streaming,
    }
    if streaming:
        body["stream_options"] = {"include_usage": True}
    return body
