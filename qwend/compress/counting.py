"""Token counts for compression: the protocol and an estimator corrected online (pure).

A lane with a ``/tokenize`` endpoint counts exactly; that adapter does I/O and lives
with the console. Everywhere else the estimator counts by script: a Qwen tokenizer
spends about 0.7 tokens per CJK character (its vocabulary holds many two-character
words), 1.3 per Latin word, one per digit (digits are split one by one) and about one
per punctuation mark. Those weights are a prior; every observed ``usage.prompt_tokens``
moves them towards what the lane really counts (normalised least mean squares, the
textbook online linear regression), so estimates converge on the lane's tokenizer.
Counts are rounded up and carry a safety margin that follows the estimator's recent
worst shortfall, so a budget stated in the lane's tokens holds although counts are
estimates.
"""

from __future__ import annotations

import math
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
"""A Latin word longer than this costs one ``long_word`` unit per further started six
characters (long words split into several tokens)."""
LEARNING_RATE = 0.5
"""NLMS step: 1 would fit each observation exactly, forgetting the ones before."""
INITIAL_MARGIN = 0.10
"""Estimates are inflated by a safety margin so that a budget in real tokens holds: 10 %
until observations show how far off the estimator really is."""
MIN_MARGIN = 0.02
MARGIN_DECAY = 0.9
"""Each observation lets the margin shrink by this factor towards the latest shortfall."""
WEIGHT_BOUNDS = (0.2, 5.0)
"""A learned weight stays within these multiples of its prior (one odd reply cannot wreck it)."""

_CJK = (
    r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    r"\U00020000-\U0002fa1f"
)
_CJK_CHAR = re.compile(f"[{_CJK}]")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(rf"[^\W\d_{_CJK}]+")
_PUNCT = re.compile(r"[^\w\s]")


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
        """The counts in ``FEATURES`` order."""
        return (
            float(self.cjk),
            float(self.word),
            float(self.long_word),
            float(self.digit),
            float(self.punct),
            float(self.image),
            float(self.message),
        )

    def __add__(self, other: Features) -> Features:
        return Features(**{name: getattr(self, name) + getattr(other, name) for name in FEATURES})


def text_features(text: str) -> Features:
    """Count the units of ``text`` (one C-level scan per kind: this runs per sentence)."""
    words = _WORD.findall(text)
    long_word = sum((len(w) - 1) // LONG_WORD_CHARS for w in words if len(w) > LONG_WORD_CHARS)
    return Features(
        cjk=len(_CJK_CHAR.findall(text)),
        word=len(words),
        long_word=long_word,
        digit=len(_DIGIT.findall(text)),
        punct=len(_PUNCT.findall(text)),
    )


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
        self._margin = INITIAL_MARGIN

    @property
    def weights(self) -> Mapping[str, float]:
        """Current tokens per unit, by feature."""
        return dict(self._weights)

    def _estimate(self, features: Features) -> float:
        w = self._weights
        return (
            w["cjk"] * features.cjk
            + w["word"] * features.word
            + w["long_word"] * features.long_word
            + w["digit"] * features.digit
            + w["punct"] * features.punct
            + w["image"] * features.image
            + w["message"] * features.message
        )

    @property
    def margin(self) -> float:
        """Share by which counts exceed the plain estimate (the recent worst shortfall)."""
        return self._margin

    def estimate(self, messages: Sequence[Mapping[str, Any]]) -> float:
        """Plain estimate of a message list's prompt tokens, without the safety margin."""
        features = Features()
        for message in messages:
            features = features + message_features(message)
        return REPLY_PRIMER_TOKENS + self._estimate(features)

    def count(self, text: str) -> int:
        return math.ceil(self._estimate(text_features(text)) * (1.0 + self._margin))

    def count_message(self, message: Mapping[str, Any]) -> int:
        return math.ceil(self._estimate(message_features(message)) * (1.0 + self._margin))

    def observe(self, messages: Sequence[Mapping[str, Any]], prompt_tokens: int) -> None:
        if prompt_tokens <= 0 or not messages:
            return
        features = Features()
        for message in messages:
            features = features + message_features(message)
        x = features.vector()
        target = prompt_tokens - REPLY_PRIMER_TOKENS
        error = target - self._estimate(features)
        shortfall = max(0.0, error / target) if target > 0 else 0.0
        self._margin = max(MIN_MARGIN, shortfall * 1.25, self._margin * MARGIN_DECAY)
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
