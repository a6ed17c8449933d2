"""When and how far a chat history is compressed, and how that is reported (pure).

A request asks with the ``X-Qwend-Compress`` header: ``auto`` (compress to the
configured budget, or to what the target lane's context leaves), ``off``, or a
number of tokens (that budget). Without the header the endpoint's setting decides
(``[[public.endpoints]] compress``, ``[public] console_compress``). The answer
says what was done in ``X-Qwend-Compressed: BEFORE->AFTER`` (prompt tokens).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

COMPRESS_HEADER = "X-Qwend-Compress"
COMPRESSED_HEADER = "X-Qwend-Compressed"
SESSION_HEADER = "X-Qwend-Session"
"""A client's conversation id: keeps earlier turns compressed the same way next time."""
MIN_BUDGET = 64
"""Smallest budget a request may ask for."""
CONTEXT_MARGIN = 0.9
"""Share of the lane's context a history may fill when the budget comes from it (the
estimate of a lane without ``/tokenize`` may be off by a few per cent)."""
DEFAULT_OUTPUT_RESERVE = 1024
"""Room kept for the answer when the request sets no ``max_tokens``."""


class HistoryRefused(ValueError):
    """A bad ``X-Qwend-Compress`` header; ``str()`` says what is accepted."""


@dataclass(frozen=True)
class Mode:
    """What a request asked for."""

    enabled: bool
    budget: int | None = None
    """An explicit token budget (None: from the configuration or the lane's context)."""


def parse_mode(header: str | None, default_enabled: bool) -> Mode:
    """The ``X-Qwend-Compress`` header (None: the endpoint's default)."""
    if header is None:
        return Mode(default_enabled)
    value = header.strip().lower()
    if value == "auto":
        return Mode(True)
    if value == "off":
        return Mode(False)
    if value.isdigit() and int(value) >= MIN_BUDGET:
        return Mode(True, int(value))
    raise HistoryRefused(
        f"{COMPRESS_HEADER} must be 'auto', 'off' or a token budget of at least {MIN_BUDGET},"
        f" got {header!r}"
    )


def max_output(doc: Mapping[str, Any]) -> int:
    """The answer's room the request asks for (``max_completion_tokens``/``max_tokens``)."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_OUTPUT_RESERVE


def budget_for(
    mode: Mode,
    configured: int | None,
    context_lengths: Sequence[int],
    doc: Mapping[str, Any],
) -> int | None:
    """Tokens the history may cost; None when nothing bounds it (no length known)."""
    if mode.budget is not None:
        return mode.budget
    if configured is not None:
        return configured
    if not context_lengths:
        return None
    room = int(min(context_lengths) * CONTEXT_MARGIN) - max_output(doc)
    return max(MIN_BUDGET, room)


class Compressed(Protocol):
    """A compressed request: its new body and the ``X-Qwend-Compressed`` value."""

    @property
    def doc(self) -> dict[str, Any]: ...

    @property
    def header(self) -> str: ...


class HistoryHook(Protocol):
    """What a listener needs of history compression (``qwend.public.history``)."""

    async def apply(
        self,
        doc: dict[str, Any],
        lanes: Sequence[Any],
        *,
        mode: str | None,
        enabled: bool,
        session: str | None,
    ) -> Compressed | None:
        """The compressed request, or None; HistoryRefused for a bad header."""
        ...

    def report(self, session: str) -> dict[str, object] | None:
        """What the last compression of ``session`` kept and dropped."""
        ...

    def observe(self, outcome: Compressed, prompt_tokens: int) -> None:
        """The lane counted ``prompt_tokens`` for the compressed request: learn from it."""
        ...


def prompt_tokens_of(body: bytes) -> int | None:
    """``usage.prompt_tokens`` of a whole (non-streamed) answer, if it has one."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    usage = doc.get("usage") if isinstance(doc, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
