"""The values history compression takes and returns (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How large a compressed history may be."""

    max_tokens: int
    """Most prompt tokens the whole message list may cost (template overhead included)."""
    keep_recent_turns: int = 4
    """How many of the last non-system messages are always sent verbatim."""

    def __post_init__(self) -> None:
        if self.max_tokens <= 0:
            raise ValueError(f"Budget.max_tokens must be a positive integer, got {self.max_tokens}")
        if self.keep_recent_turns < 0:
            raise ValueError(
                f"Budget.keep_recent_turns must be 0 or more, got {self.keep_recent_turns}"
            )


@dataclass(frozen=True)
class TurnReport:
    """What compression did to one message of the history."""

    index: int
    """Position of the message in the input list."""
    role: str
    """The message's role (``system``, ``user``, ``assistant``, ...)."""
    tokens_before: int
    """Tokens the message cost as given (template overhead included)."""
    tokens_after: int
    """Tokens it costs as sent; 0 when the message was left out entirely."""
    kept: tuple[str, ...]
    """Sentences sent, in order (each a substring of the message's text)."""
    dropped: tuple[str, ...]
    """Sentences left out, in order; ``[image]`` for an image left out as a last resort."""
    verbatim: bool = False
    """Sent as is because it is a system prompt, a recent turn or not compressible text;
    a later call compresses a turn that was verbatim only because it was recent."""


@dataclass(frozen=True)
class CompressionResult:
    """A history ready to send, and what was done to it."""

    messages: tuple[Mapping[str, Any], ...]
    """OpenAI chat messages in the input's shape (fully dropped turns left out)."""
    tokens_before: int
    """Prompt tokens of the input history."""
    tokens_after: int
    """Prompt tokens of ``messages``."""
    compressed: bool
    """True when anything was left out."""
    turns: tuple[TurnReport, ...]
    """One report per input message, in input order."""
    within_budget: bool
    """False only when the verbatim part (system prompt and recent turns) alone is over."""
