"""Sliding windows (pure): recent samples, their percentiles and tokens/s.

``Window`` keeps recent ``(time, value)`` samples and answers p50/p95/p99
over the last ``window_s`` seconds; recording is O(1), sorting happens only
when a snapshot is asked for. ``Series`` is the set of windows kept per lane
and per traffic class (TTFT, inter-token latency, end-to-end, tokens).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

WINDOW_S = 60.0
"""Default sliding window of percentiles and tokens/s."""
MAX_SAMPLES = 2048
"""Samples kept per series (bounds memory and snapshot cost under heavy load)."""


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50/p95/p99 of one series over the window; None when it has no samples."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    count: int = 0
    """Samples in the window."""


def percentiles(values: Iterable[float]) -> Percentiles:
    """Nearest-rank p50/p95/p99 of ``values``."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return Percentiles()

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, int(q * n + 0.999999) - 1))]

    return Percentiles(rank(0.50), rank(0.95), rank(0.99), n)


class Window:
    """Recent samples of one series, trimmed by age at read time.

    Times and values live in two parallel deques so a read copies the values
    with one C-level ``list()`` instead of a Python loop (snapshots run on the loop).
    """

    __slots__ = ("_times", "_values", "window_s")

    def __init__(self, window_s: float = WINDOW_S, max_samples: int = MAX_SAMPLES) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_samples)
        self._values: deque[float] = deque(maxlen=max_samples)

    def add(self, now: float, value: float) -> None:
        """Record one sample taken at ``now`` (monotonic seconds)."""
        self._times.append(now)
        self._values.append(value)

    def values(self, now: float) -> list[float]:
        """Values recorded within the window before ``now``."""
        cutoff = now - self.window_s
        times, values = self._times, self._values
        while times and times[0] < cutoff:
            times.popleft()
            values.popleft()
        return list(values)

    def percentiles(self, now: float) -> Percentiles:
        """p50/p95/p99 over the window."""
        return percentiles(self.values(now))

    def total(self, now: float) -> float:
        """Sum of the values in the window."""
        return sum(self.values(now))


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Latency and throughput of a lane or a class over the window."""

    ttft: Percentiles = Percentiles()
    """Time to first token (first streamed byte), seconds."""
    itl: Percentiles = Percentiles()
    """Mean inter-token latency per request, seconds."""
    e2e: Percentiles = Percentiles()
    """End-to-end latency as the router saw it, seconds."""
    tokens_per_s: float = 0.0
    """Completion tokens finished in the window divided by the window length."""


class Series:
    """The three latency windows plus a token counter for one lane or class."""

    __slots__ = ("e2e", "itl", "tokens", "ttft")

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.ttft = Window(window_s)
        self.itl = Window(window_s)
        self.e2e = Window(window_s)
        self.tokens = Window(window_s)

    def record(
        self, now: float, ttft: float | None, itl: float | None, e2e: float, tokens: int
    ) -> None:
        """One finished request."""
        if ttft is not None:
            self.ttft.add(now, ttft)
        if itl is not None:
            self.itl.add(now, itl)
        self.e2e.add(now, e2e)
        if tokens:
            self.tokens.add(now, tokens)

    def stats(self, now: float) -> LatencyStats:
        """Percentiles and tokens/s as of ``now``."""
        window = self.e2e.window_s
        return LatencyStats(
            self.ttft.percentiles(now),
            self.itl.percentiles(now),
            self.e2e.percentiles(now),
            self.tokens.total(now) / window if window > 0 else 0.0,
        )
