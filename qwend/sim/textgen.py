"""Deterministic pseudo-text for the sim (pure).

Every piece is one token for ``qwend.tokens`` (words of at most four letters,
punctuation on its own), so ``usage.completion_tokens`` equals what the shared
tokenizer counts in the returned text. The same seed gives the same text.
"""

from __future__ import annotations

import zlib

_WORDS = (
    "the", "lane", "runs", "fast", "on", "one", "npu", "and", "the", "tok", "rate", "is",
    "high", "when", "the", "load", "is", "low", "each", "step", "adds", "a", "word", "to",
    "the", "text", "so", "that", "the", "user", "can", "see", "it", "move", "we", "keep", "a",
    "warm", "pool", "of", "kv", "for", "the", "next", "turn", "then", "we", "send", "it",
    "back", "to", "you", "a", "new", "plan", "may", "help", "if", "the", "wall", "time",
    "goes", "up", "too", "much", "over", "the", "day",
)  # fmt: skip
_COLOURS = ("Red", "Blue", "Green", "Gray", "Pink", "Gold", "Teal", "Navy")
_SENTENCE_WORDS = 11
"""Words per sentence before a full stop."""


def text_seed(*parts: object) -> int:
    """A stable 32-bit seed from the request's identifying parts."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


def _mix(seed: int, index: int) -> int:
    return zlib.crc32(f"{seed}:{index}".encode("ascii"))


def text_piece(seed: int, index: int) -> str:
    """Token ``index`` (0-based) of the answer for ``seed``."""
    position = index % (_SENTENCE_WORDS + 1)
    if position == _SENTENCE_WORDS:
        return "."
    word = _WORDS[_mix(seed, index) % len(_WORDS)]
    if position == 0:
        word = word.capitalize()
    return word if index == 0 else " " + word


def caption_piece(seed: int, index: int) -> str:
    """Token ``index`` of a short answer about an image (a colour, then a full stop)."""
    if index == 0:
        return _COLOURS[seed % len(_COLOURS)]
    return "." if index == 1 else text_piece(seed, index)
