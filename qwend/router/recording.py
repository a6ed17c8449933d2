"""Recording traffic: router-wide counters, per-class statistics, and what one finished
request teaches its lane (windows and learned model).

The functions work on the runtimes they are given; the router's snapshot reads the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from qwend.router.lanes import LaneRuntime
from qwend.router.proxy import StreamResult, usage_counts
from qwend.routing.classify import RequestSummary
from qwend.routing.histograms import Measure, SeriesKey, TrafficHistograms
from qwend.routing.windows import Series


@dataclass(eq=False)
class RouterCounters:
    """Monotonic router-wide counters."""

    requests: int = 0
    retries: int = 0
    retries_refused: int = 0
    """Retries not sent because the router-wide retry budget was spent."""
    spills: int = 0
    rejected_queue_full: int = 0
    rejected_no_lane: int = 0
    mid_stream_errors: int = 0
    client_disconnects: int = 0
    bad_requests: int = 0
    pd_requests: int = 0
    """Attempts sent to a prefill/decode pair."""
    pd_transfer_failures: int = 0
    """Pair attempts whose KV hand-over failed: the prefill lane's answer carried no
    transfer parameters, or the decode lane could not pull the KV."""


@dataclass(eq=False)
class ClassRuntime:
    """Statistics of one traffic class."""

    series: Series = field(default_factory=Series)
    requests: int = 0
    errors: int = 0
    name: str = ""
    """The class (``short_text``...): the ``cls`` label of its histograms."""
    traffic: TrafficHistograms | None = None
    """The router's histograms and token counters (None: not recorded)."""

    keys: dict[tuple[str, str, str], SeriesKey] = field(default_factory=dict)
    """Label sets made so far (a frozen dataclass per request would cost more)."""

    def key(self, lane: LaneRuntime) -> SeriesKey:
        """The histogram labels of this class's traffic on ``lane``."""
        routable = lane.lane
        ident = (routable.name, routable.role, routable.variant)
        found = self.keys.get(ident)
        if found is None:
            found = self.keys[ident] = SeriesKey(*ident, self.name)
        return found

    def observe(self, lane: LaneRuntime, measure: Measure, seconds: float | None) -> None:
        """Count one latency observation of this class on ``lane`` (None: not measured)."""
        if self.traffic is not None and seconds is not None:
            self.traffic.observe(self.key(lane), measure, seconds)

    def add_tokens(self, lane: LaneRuntime, prompt: int, completion: int) -> None:
        """Count the tokens of one answer of this class on ``lane``."""
        if self.traffic is not None:
            self.traffic.add_tokens(self.key(lane), prompt, completion)


def record_whole(
    lane: LaneRuntime,
    klass: ClassRuntime,
    summary: RequestSummary,
    start: float,
    began: float,
    integral0: float,
    data: bytes,
) -> tuple[int, int]:
    """Record a whole (non-streamed) 200 answer and teach the lane model; returns its
    (prompt, completion) token counts."""
    now = time.monotonic()
    prompt, completion = usage_counts(data)
    concurrency = (lane.integral_now(now) - integral0) / max(1e-6, now - began)
    lane.perf.observe_total(prompt or summary.prompt_tokens, completion, now - began, concurrency)
    e2e = now - start
    lane.series.record(now, None, None, e2e, completion)
    klass.series.record(now, None, None, e2e, completion)
    klass.observe(lane, Measure.E2E, e2e)
    klass.add_tokens(lane, prompt or summary.prompt_tokens, completion)
    return prompt or summary.prompt_tokens, completion


def record_stream(
    lane: LaneRuntime,
    klass: ClassRuntime,
    summary: RequestSummary,
    start: float,
    began: float,
    integral0: float,
    result: StreamResult,
) -> tuple[float, int, int] | None:
    """Record a relayed stream (TTFT, ITL, tokens) and teach the lane model; returns its
    (TTFT, prompt, completion), None when there was nothing to record."""
    last_at = result.last_at
    if not last_at or result.upstream_error is not None:
        return None
    first_at = result.first_at
    prompt, completion = result.usage
    if not completion:
        completion = max(1, result.events - 2)
    concurrency = (lane.integral_now(last_at) - integral0) / max(1e-6, last_at - began)
    lane.perf.observe_ttft(prompt or summary.prompt_tokens, first_at - began, concurrency)
    itl = (last_at - first_at) / (completion - 1) if completion > 1 else None
    if itl is not None:
        lane.perf.observe_decode(completion, itl, concurrency)
    ttft, e2e = first_at - start, last_at - start
    lane.series.record(last_at, ttft, itl, e2e, completion)
    klass.series.record(last_at, ttft, itl, e2e, completion)
    klass.observe(lane, Measure.TTFT, ttft)
    klass.observe(lane, Measure.ITL, itl)
    klass.observe(lane, Measure.E2E, e2e)
    klass.add_tokens(lane, prompt or summary.prompt_tokens, completion)
    return ttft, prompt or summary.prompt_tokens, completion
