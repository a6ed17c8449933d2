"""Per-key rate limits of the public endpoints: token buckets (pure).

A key may carry a request rate and a token rate (``requests_per_minute``,
``tokens_per_minute`` in the API keys file). Each is a token bucket holding at
most one minute's worth, refilled continuously: a key may burst up to its
per-minute limit, then goes at the limit's pace. A request costs one request
and its estimated tokens (prompt estimate plus ``max_tokens``, charged up front
the way OpenAI's own limits work, since the real count is only known once the
answer is done). A request is admitted only when every bucket of its key can
pay, and then all of them pay, so a refusal costs nothing.

No clock is read here: the caller passes ``now`` (monotonic seconds), so tests
drive time by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

SECONDS_PER_MINUTE = 60.0


class Limit(StrEnum):
    """What a bucket counts."""

    REQUESTS = "requests"
    """Requests to the completion endpoints."""
    TOKENS = "tokens"
    """Estimated prompt tokens plus the tokens the request may generate."""


@dataclass(frozen=True)
class KeyLimits:
    """The rate limits of one API key; None: no limit of that kind."""

    requests_per_minute: int | None = None
    """Requests per minute (bursts of up to this many)."""
    tokens_per_minute: int | None = None
    """Tokens per minute (one request may use up to this many at once)."""

    def rates(self) -> tuple[tuple[Limit, int], ...]:
        """The limits set, as ``(kind, per minute)``."""
        pairs = ((Limit.REQUESTS, self.requests_per_minute), (Limit.TOKENS, self.tokens_per_minute))
        return tuple((kind, rate) for kind, rate in pairs if rate is not None)


class TokenBucket:
    """Up to ``per_minute`` units, refilled at ``per_minute`` a minute; starts full."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / SECONDS_PER_MINUTE
        self._level = self.capacity
        self._at = now

    def level(self, now: float) -> float:
        """Units available at ``now``."""
        # max(): a clock read before the last one (another task's) must not drain the bucket.
        elapsed = max(0.0, now - self._at)
        return min(self.capacity, self._level + elapsed * self._rate)

    def wait_s(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` units are available (0: now; inf: more than it can hold)."""
        if cost > self.capacity:
            return math.inf
        return max(0.0, (cost - self.level(now)) / self._rate)

    def take(self, cost: float, now: float) -> None:
        """Pay ``cost`` units (the caller checked ``wait_s`` is 0)."""
        self._level = self.level(now) - cost
        self._at = max(self._at, now)


@dataclass(frozen=True)
class Limited:
    """Why a request was refused, and when it may be tried again."""

    limit: Limit
    per_minute: int
    cost: int
    """What this request would have cost in that limit's units."""
    retry_after_s: float | None
    """Seconds until it would pass; None: never, it costs more than the limit holds."""

    @property
    def retry_after_header(self) -> int | None:
        """The ``Retry-After`` value: whole seconds, at least 1; None when retrying cannot help."""
        if self.retry_after_s is None:
            return None
        return max(1, math.ceil(self.retry_after_s))

    def message(self) -> str:
        """The client's error message (OpenAI style: what, the limit, what to do)."""
        if self.retry_after_s is None:
            return (
                f"This request may use {self.cost} tokens (estimated prompt plus max_tokens),"
                f" more than this API key's limit of {self.per_minute} tokens per minute;"
                " lower max_tokens or send a shorter prompt."
            )
        return (
            f"Rate limit reached for this API key: {self.per_minute} {self.limit.value}"
            f" per minute. Try again in {self.retry_after_header} s."
        )


class RateLimiter:
    """The buckets of every limited key, created on a key's first request."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[bytes, Limit, int], TokenBucket] = {}

    def admit(self, key: bytes, limits: KeyLimits, tokens: int, now: float) -> Limited | None:
        """Admit one request of ``key`` costing ``tokens``: None, or why not (nothing paid)."""
        costs = {Limit.REQUESTS: 1, Limit.TOKENS: tokens}
        payments: list[tuple[TokenBucket, int]] = []
        worst: tuple[float, Limit, int] | None = None  # the longest wait: what to report
        for kind, rate in limits.rates():
            bucket = self._bucket(key, kind, rate, now)
            wait = bucket.wait_s(costs[kind], now)
            payments.append((bucket, costs[kind]))
            if wait > 0 and (worst is None or wait > worst[0]):
                worst = (wait, kind, rate)
        if worst is not None:
            wait, kind, rate = worst
            return Limited(kind, rate, costs[kind], None if math.isinf(wait) else wait)
        for bucket, cost in payments:
            bucket.take(cost, now)
        return None

    def retain(self, keys: Iterable[tuple[bytes, KeyLimits]]) -> None:
        """Forget the buckets of keys no longer accepted or whose limits changed (a reload)."""
        wanted = {(key, kind, rate) for key, limits in keys for kind, rate in limits.rates()}
        self._buckets = {k: b for k, b in self._buckets.items() if k in wanted}

    @property
    def bucket_count(self) -> int:
        """Buckets held (one per limited key and kind that has seen a request)."""
        return len(self._buckets)

    def _bucket(self, key: bytes, kind: Limit, rate: int, now: float) -> TokenBucket:
        # The rate is part of the name: a reload that changes a limit starts a fresh bucket.
        name = (key, kind, rate)
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(rate, now)
        return bucket
