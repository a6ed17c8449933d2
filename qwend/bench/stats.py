"""Summary statistics and a seeded bootstrap (pure).

Percentiles use linear interpolation between order statistics (numpy's default,
which is what ``vllm bench serve`` reports), so figures compare with vLLM's own.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

BOOTSTRAP_RESAMPLES = 2000
"""Resamples per confidence interval: the interval's ends move by well under 1% between seeds."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    """Distribution of one metric (seconds, or whatever unit the samples have)."""

    count: int
    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    stdev: float
    """Sample standard deviation (n-1); 0 for a single sample."""

    def to_dict(self) -> dict[str, float | int | None]:
        items = vars(self).items()
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in items}


def summarize(values: Sequence[float]) -> Summary:
    """Mean, median, p90, p99, min, max and standard deviation of ``values``."""
    if not values:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    return Summary(
        count=len(values),
        mean=statistics.fmean(values),
        median=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        min=min(values),
        max=max(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
    )


@dataclass(frozen=True)
class RatioInterval:
    """``mean(b) / mean(a)`` with a bootstrap confidence interval."""

    ratio: float
    low: float
    high: float
    confidence: float
    resamples: int


def bootstrap_ratio(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> RatioInterval:
    """Percentile-bootstrap interval of ``mean(b) / mean(a)``; deterministic for a ``seed``.

    Each side is resampled with replacement on its own (the two runs are independent).
    """
    if not a or not b:
        raise ValueError("bootstrap needs at least one sample on each side")
    mean_a = statistics.fmean(a)
    if mean_a <= 0:
        raise ValueError("the baseline's mean must be positive")
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        ra = statistics.fmean(rng.choices(a, k=len(a)))
        rb = statistics.fmean(rng.choices(b, k=len(b)))
        ratios.append(rb / ra)
    tail = (1 - confidence) / 2 * 100
    return RatioInterval(
        ratio=statistics.fmean(b) / mean_a,
        low=percentile(ratios, tail),
        high=percentile(ratios, 100 - tail),
        confidence=confidence,
        resamples=resamples,
    )
