"""A small deterministic tokenizer for estimates (pure).

Not the model's tokenizer: a stand-in that behaves like a BPE tokenizer on
average (about four characters of English per token) and is stable across runs.
Words are split into pieces of at most ``WORD_PIECE_CHARS`` characters, every
punctuation mark is a token of its own, and whitespace attaches to the next
piece. The sim counts prompts with it and the router uses it for its estimates,
so both agree on what "a 32-token prompt" means.

Images are counted the way Qwen2/3-VL's processor does: one token per 28x28
pixel patch after resizing into ``[MIN_IMAGE_TOKENS, MAX_IMAGE_TOKENS]``.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence

WORD_PIECE_CHARS = 4
"""Longest piece of a word that counts as one token."""
VOCAB_SIZE = 151_936
"""Size of the id space token ids are hashed into (Qwen's vocabulary size)."""
IMAGE_PATCH_PX = 28
"""Side in pixels of the area one image token covers (14 px patches merged 2x2)."""
MIN_IMAGE_TOKENS = 4
"""Fewest tokens an image costs, however small."""
MAX_IMAGE_TOKENS = 16_384
"""Most tokens an image costs; larger images are scaled down first."""
DEFAULT_IMAGE_TOKENS = 256
"""Cost of an image whose size is unknown (a 448x448 image)."""
MESSAGE_OVERHEAD_TOKENS = 4
"""Chat-template tokens around each message (role markers, separators)."""
REPLY_PRIMER_TOKENS = 3
"""Chat-template tokens that open the assistant's reply."""

_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])", re.UNICODE)


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into token strings (joined, they give ``text`` minus trailing space)."""
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        chunk = match.group(0)
        stripped = chunk.lstrip()
        lead = chunk[: len(chunk) - len(stripped)]
        if not stripped[:1].isalnum() and stripped[:1] != "_":
            pieces.append(chunk)
            continue
        first = True
        for start in range(0, len(stripped), WORD_PIECE_CHARS):
            piece = stripped[start : start + WORD_PIECE_CHARS]
            pieces.append(lead + piece if first else piece)
            first = False
    return pieces


def count_tokens(text: str) -> int:
    """Number of tokens in ``text``."""
    return len(split_pieces(text))


def token_ids(text: str) -> list[int]:
    """Deterministic token ids for ``text`` (a hash of each piece into the vocabulary)."""
    return [zlib.crc32(piece.encode("utf-8")) % VOCAB_SIZE for piece in split_pieces(text)]


def image_tokens(width: int | None, height: int | None) -> int:
    """Tokens an image of ``width`` x ``height`` pixels costs (unknown size: the default)."""
    if not width or not height or width <= 0 or height <= 0:
        return DEFAULT_IMAGE_TOKENS
    patches = math.ceil(width / IMAGE_PATCH_PX) * math.ceil(height / IMAGE_PATCH_PX)
    return max(MIN_IMAGE_TOKENS, min(MAX_IMAGE_TOKENS, patches))


def chat_text_tokens(messages: Sequence[Mapping[str, object]]) -> int:
    """Text tokens of a chat request: each message's text plus the template overhead.

    Content may be a string or a list of OpenAI content parts; only ``text`` parts
    count here (images are counted separately with ``image_tokens``).
    """
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + sum(count_tokens(t) for t in message_texts(message))
    return total


def message_texts(message: Mapping[str, object]) -> Iterable[str]:
    """The text pieces of one chat message (string content or ``text`` parts)."""
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    yield text
