"""Sentence splitting for Chinese, English and mixed text (pure).

A sentence ends at ``. ! ?`` followed by white space (not after an abbreviation or an
initial), right after ``。！？；…`` and their full-width kin (Chinese needs no space),
and at every line break: chat text is full of lists and headings whose lines are units
of their own. Some things are never cut: a fenced code block, a run of table lines
(``| a | b |``) and a URL are each one unit, whatever punctuation they hold.

Each unit is a span of the original text, so a kept sentence is always a substring of
its message, and joining spans in order keeps them in order.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_TABLE = re.compile(r"(?:^[ \t]*\|[^\n]*\|[ \t]*(?:\n|\Z))+", re.M)
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'）」】，。]+|\bwww\.[^\s<>\"'）」】，。]+", re.I)
SPLIT_CACHE_SIZE = 8192
"""Messages whose split is remembered (a few long conversations' worth)."""
_CJK_END = "。！？；…!?"
_CLOSERS = "\"'”’」』）)】]》"
# Ends a sentence: CJK terminators (no space needed), or Latin ones followed by space.
_BOUNDARY = re.compile(
    rf"[。！？；…]+[{re.escape(_CLOSERS)}]*|[.!?]+[{re.escape(_CLOSERS)}]*(?=\s)|\n"
)
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "fig",
        "approx",
        "cf",
        "al",
        "inc",
        "ltd",
        "jr",
        "sr",
        "dept",
        "est",
    ]
)


@dataclass(frozen=True)
class Span:
    """One sentence (or code block, table, URL line): ``text == source[start:end]``."""

    start: int
    end: int
    text: str
    atomic: bool = False
    """A code block or table: kept or dropped as a whole, never scored as prose."""


def _protected(text: str) -> list[tuple[int, int, bool]]:
    """Regions that must not be cut: (start, end, is_block)."""
    regions: list[tuple[int, int, bool]] = []
    for pattern, block in ((_FENCE, True), (_TABLE, True), (_URL, False)):
        for match in pattern.finditer(text):
            start, end = match.span()
            if block:
                end = len(text[:end].rstrip("\n"))
            else:
                # Trailing punctuation ends the sentence, not the URL.
                end = start + len(match.group().rstrip(".,;:!?)]"))
            if start < end and not any(s < end and start < e for s, e, _ in regions):
                regions.append((start, end, block))
    return sorted(regions)


def _after_abbreviation(text: str, dot: int) -> bool:
    """True when the ``.`` at ``dot`` closes an abbreviation or an initial, not a sentence."""
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot].lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial, as in "J. Smith"
    return word.rstrip(".") in _ABBREVIATIONS


def _prose_cuts(
    text: str, start: int, end: int, protected: list[tuple[int, int, bool]]
) -> list[int]:
    cuts: list[int] = []
    for match in _BOUNDARY.finditer(text, start, end):
        cut = match.end()
        if any(s < cut <= e and s < match.start() for s, e, _ in protected):
            continue
        if match.group().startswith(".") and _after_abbreviation(text, match.start()):
            continue
        cuts.append(cut)
    return cuts


@lru_cache(maxsize=SPLIT_CACHE_SIZE)
def split_sentences(text: str) -> tuple[Span, ...]:
    """Split ``text`` into sentences, code blocks and tables, in order, blanks trimmed.

    Memoised: a conversation is compressed again at every request, and its older
    messages never change.
    """
    protected = _protected(text)
    cuts: set[int] = {0, len(text)}
    position = 0
    for start, end, block in protected:
        if block:
            cuts.update((start, end))
        cuts.update(_prose_cuts(text, position, start, protected))
        position = max(position, end if block else position)
    cuts.update(_prose_cuts(text, position, len(text), protected))
    blocks = [(s, e) for s, e, block in protected if block]
    spans: list[Span] = []
    ordered = sorted(cuts)
    for left, right in itertools.pairwise(ordered):
        piece = text[left:right]
        stripped = piece.strip()
        if not stripped:
            continue
        lead = len(piece) - len(piece.lstrip())
        begin = left + lead
        finish = begin + len(stripped)
        atomic = any(s <= begin and finish <= e for s, e in blocks)
        spans.append(Span(begin, finish, stripped, atomic))
    return tuple(spans)


def join_spans(source: str, spans: tuple[Span, ...] | list[Span]) -> str:
    """The kept spans of ``source`` as one text: a line break where the source had one
    between them, a space between Latin sentences, nothing between CJK ones."""
    parts: list[str] = []
    previous: Span | None = None
    for span in spans:
        if previous is not None:
            gap = source[previous.end : span.start]
            if "\n" in gap or span.atomic or previous.atomic:
                parts.append("\n")
            elif gap and not gap.strip():
                parts.append(" ")
            elif previous.text[-1:] in _CJK_END or not previous.text[-1:].isascii():
                parts.append("")
            else:
                parts.append(" ")
        parts.append(span.text)
        previous = span
    return "".join(parts)
