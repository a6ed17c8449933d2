"""Latency histograms and token counters per lane and traffic class (pure).

Prometheus aggregates histograms across instances and over any range
(``histogram_quantile(0.95, sum by (le) (rate(..._bucket[5m])))``); window
percentiles cannot be aggregated, so ``/metrics`` exports these and the window
percentiles stay in the status view. Observing costs one bisect and two
additions: the request path records here directly.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

LATENCY_BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
)  # fmt: skip
"""Upper bounds (seconds) of TTFT, E2E and queue-wait buckets: 5 ms to minutes (long prompts)."""
ITL_BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Upper bounds (seconds) of inter-token latency buckets: decode steps are milliseconds."""


class Measure(StrEnum):
    """What a histogram measures (its metric name is ``qwend_router_<value>_seconds``)."""

    TTFT = "ttft"
    """Time to first token: request received to the first streamed chunk."""
    ITL = "itl"
    """Mean inter-token latency of one streamed answer."""
    E2E = "e2e"
    """Request received to the last byte of the answer."""
    QUEUE_WAIT = "queue_wait"
    """Request received to the lane slot of its first attempt."""
    PD_PREFILL = "pd_prefill"
    """Prefill hop of a prefill/decode pair, on the prefill lane: sent to the answer
    carrying the KV transfer parameters (the prompt's prefill and the one token)."""
    PD_DECODE_START = "pd_decode_start"
    """Decode hop, on the decode lane: sent to its first byte (the KV pull included)."""


BOUNDS: dict[Measure, tuple[float, ...]] = {
    Measure.TTFT: LATENCY_BOUNDS,
    Measure.ITL: ITL_BOUNDS,
    Measure.E2E: LATENCY_BOUNDS,
    Measure.QUEUE_WAIT: LATENCY_BOUNDS,
    Measure.PD_PREFILL: LATENCY_BOUNDS,
    Measure.PD_DECODE_START: LATENCY_BOUNDS,
}


@dataclass(eq=False)
class Histogram:
    """Counts of observations per bucket (not cumulative; the last one is ``+Inf``)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    """Sum of the observations."""

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count one observation (``le`` semantics: a value equal to a bound is in it)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def view(self) -> HistogramView:
        """Cumulative counts, as Prometheus exposes them."""
        cumulative: list[int] = []
        running = 0
        for count in self.counts:
            running += count
            cumulative.append(running)
        return HistogramView(self.bounds, tuple(cumulative), self.total)


@dataclass(frozen=True, slots=True)
class HistogramView:
    """A histogram at one instant."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    """Observations <= each bound, then the total count (the ``+Inf`` bucket)."""
    total: float
    """Sum of the observations."""

    @property
    def count(self) -> int:
        """Number of observations."""
        return self.cumulative[-1]


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """The labels of one series: a lane (with its role and variant) and a traffic class."""

    lane: str
    role: str
    variant: str
    cls: str


@dataclass(eq=False)
class TrafficSeries:
    """The histograms and token counters of one ``SeriesKey``."""

    histograms: dict[Measure, Histogram] = field(
        default_factory=lambda: {m: Histogram(b) for m, b in BOUNDS.items()}
    )
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TrafficView:
    """One ``SeriesKey``'s histograms and counters at one instant."""

    key: SeriesKey
    histograms: dict[Measure, HistogramView]
    prompt_tokens: int
    completion_tokens: int


@dataclass(eq=False)
class TrafficHistograms:
    """Every series since start, while its lane is configured (counters never go back)."""

    series: dict[SeriesKey, TrafficSeries] = field(default_factory=dict)

    def of(self, key: SeriesKey) -> TrafficSeries:
        """The series of ``key``, created on first use."""
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = TrafficSeries()
        return found

    def observe(self, key: SeriesKey, measure: Measure, seconds: float) -> None:
        """Count one latency observation."""
        self.of(key).histograms[measure].observe(max(0.0, seconds))

    def add_tokens(self, key: SeriesKey, prompt: int, completion: int) -> None:
        """Count the tokens of one answer."""
        series = self.of(key)
        series.prompt_tokens += max(0, prompt)
        series.completion_tokens += max(0, completion)

    def forget(self, lanes: Collection[tuple[str, str, str]]) -> None:
        """Drop the series of every lane not in ``lanes`` as (name, role, variant): a lane
        removed by a reload, or one whose role or variant changed, stops being exported
        (as a scrape target's series go stale when the target goes)."""
        for key in [k for k in self.series if (k.lane, k.role, k.variant) not in lanes]:
            del self.series[key]

    def views(self) -> tuple[TrafficView, ...]:
        """Every series, sorted by its labels."""
        return tuple(
            TrafficView(
                key,
                {m: h.view() for m, h in s.histograms.items()},
                s.prompt_tokens,
                s.completion_tokens,
            )
            for key, s in sorted(
                self.series.items(),
                key=lambda kv: (kv[0].lane, kv[0].cls, kv[0].role, kv[0].variant),
            )
        )
