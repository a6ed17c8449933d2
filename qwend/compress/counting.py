"""Token counts for compression: the protocol and an estimator corrected online (pure).

A lane with a ``/tokenize`` endpoint counts exactly; that adapter does I/O and lives
with the console. Everywhere else the estimator counts by script: a Qwen tokenizer
spends about 0.7 tokens per CJK character (its vocabulary holds many two-character
words), 1.3 per Latin word, one per digit (digits are split one by one) and about one
per punctuation mark. Those weights are a prior; every observed ``usage.prompt_tokens``
moves them towards what the lane really counts (normalised least mean squares, the
textbook online linear regression), so estimates converge on the lane's tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qwend.tokens import DEFAULT_IMAGE_TOKENS, MESSAGE_OVERHEAD_TOKENS, REPLY_PRIMER_TOKENS


class TokenCounter(Protocol):
    """Counts prompt tokens the way the serving lane does, or as close as it can."""

    def count(self, text: str) -> int:
        """Tokens of ``text`` alone."""
        ...

    def count_message(self, message: Mapping[str, Any]) -> int:
        """Tokens of one chat message: text, images and chat-template overhead."""
        ...

    def observe(self, messages: Sequence[Mapping[str, Any]], prompt_tokens: int) -> None:
        """Learn from a lane's ``usage.prompt_tokens`` for ``messages`` (may do nothing)."""
        ...


FEATURES = ("cjk", "word", "long_word", "digit", "punct", "image", "message")
"""What the estimator counts; its weights are tokens per unit of each."""

PRIOR_WEIGHTS = {
    "cjk": 0.7,
    "word": 1.15,
    "long_word": 0.25,
    "digit": 1.0,
    "punct": 0.9,
    "image": float(DEFAULT_IMAGE_TOKENS),
    "message": float(MESSAGE_OVERHEAD_TOKENS),
}
"""Tokens per unit before any observation (Qwen's tokenizer on typical chat text)."""

LONG_WORD_CHARS = 6
"""A Latin word costs one ``long_word`` unit per this many characters beyond the first six."""
LEARNING_RATE = 0.5
"""NLMS step: 1 would fit each observation exactly, forgetting the ones before."""
WEIGHT_BOUNDS = (0.2, 5.0)
"""A learned weight stays within these multiples of its prior (one odd reply cannot wreck it)."""

_CJK = (
    r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    r"\U00020000-\U0002fa1f"
)
_UNITS = re.compile(
    rf"(?P<cjk>[{_CJK}])|(?P<digit>\d)|(?P<word>[^\W\d_{_CJK}]+)|(?P<punct>[^\w\s])"
)


@dataclass(frozen=True)
class Features:
    """Counts of the estimator's units in some text or messages."""

    cjk: int = 0
    word: int = 0
    long_word: int = 0
    digit: int = 0
    punct: int = 0
    image: int = 0
    message: int = 0

    def vector(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, name)) for name in FEATURES)

    def __add__(self, other: Features) -> Features:
        return Features(**{name: getattr(self, name) + getattr(other, name) for name in FEATURES})


def text_features(text: str) -> Features:
    """Count the units of ``text``."""
    cjk = word = long_word = digit = punct = 0
    for match in _UNITS.finditer(text):
        kind = match.lastgroup
        if kind == "cjk":
            cjk += 1
        elif kind == "digit":
            digit += 1
        elif kind == "word":
            word += 1
            long_word += max(0, len(match.group()) - LONG_WORD_CHARS) // LONG_WORD_CHARS + (
                1 if len(match.group()) > LONG_WORD_CHARS else 0
            )
        else:
            punct += 1
    return Features(cjk=cjk, word=word, long_word=long_word, digit=digit, punct=punct)


def message_features(message: Mapping[str, Any]) -> Features:
    """Units of one chat message, images and the message's template overhead included."""
    content = message.get("content")
    total = Features(message=1)
    if isinstance(content, str):
        return total + text_features(content)
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                total = total + text_features(part["text"])
            elif part.get("type") in ("image_url", "image", "input_image"):
                total = total + Features(image=1)
    return total


class EstimatingCounter:
    """Per-script token estimator whose weights follow observed prompt sizes.

    Not thread-safe; one per conversation store or per process (its state is only
    the weights, so sharing one between sessions just pools their observations).
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self._weights = dict(PRIOR_WEIGHTS)
        if weights:
            unknown = set(weights) - set(FEATURES)
            if unknown:
                raise ValueError(f"unknown estimator weights {sorted(unknown)}; know {FEATURES}")
            self._weights.update(weights)
        self.observations = 0

    @property
    def weights(self) -> Mapping[str, float]:
        """Current tokens per unit, by feature."""
        return dict(self._weights)

    def _estimate(self, features: Features) -> float:
        return sum(
            self._weights[name] * value
            for name, value in zip(FEATURES, features.vector(), strict=True)
        )

    def count(self, text: str) -> int:
        return round(self._estimate(text_features(text)))

    def count_message(self, message: Mapping[str, Any]) -> int:
        return round(self._estimate(message_features(message)))

    def observe(self, messages: Sequence[Mapping[str, Any]], prompt_tokens: int) -> None:
        if prompt_tokens <= 0 or not messages:
            return
        features = Features()
        for message in messages:
            features = features + message_features(message)
        x = features.vector()
        target = prompt_tokens - REPLY_PRIMER_TOKENS
        error = target - self._estimate(features)
        # Scale each step by the prior so that weights of very different sizes (an image is
        # hundreds of tokens, a digit one) learn at the same relative pace.
        scaled = [xi * PRIOR_WEIGHTS[name] for name, xi in zip(FEATURES, x, strict=True)]
        norm = sum(s * xi for s, xi in zip(scaled, x, strict=True))
        if norm <= 0:
            return
        low, high = WEIGHT_BOUNDS
        for name, xi, si in zip(FEATURES, x, scaled, strict=True):
            if xi == 0:
                continue
            updated = self._weights[name] + LEARNING_RATE * error * si / norm
            prior = PRIOR_WEIGHTS[name]
            self._weights[name] = min(high * prior, max(low * prior, updated))
        self.observations += 1


def count_messages(counter: TokenCounter, messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens of a whole message list: its messages plus the reply primer."""
    return REPLY_PRIMER_TOKENS + sum(counter.count_message(m) for m in messages)
