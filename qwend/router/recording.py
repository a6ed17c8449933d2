"""Router counters, per-request recording and the ``RouterSnapshot`` builder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qwend.router.proxy import StreamResult, usage_counts
from qwend.routing.classify import RequestSummary
from qwend.routing.snapshot import ClassStats, LaneStats, RouterSnapshot
from qwend.routing.windows import Series, Window

if TYPE_CHECKING:
    from qwend.router.admission import LaneRuntime
    from qwend.router.router import Router


@dataclass(eq=False)
class RouterCounters:
    """Monotonic router-wide counters."""

    requests: int = 0
    retries: int = 0
    spills: int = 0
    rejected_queue_full: int = 0
    rejected_no_lane: int = 0
    mid_stream_errors: int = 0
    client_disconnects: int = 0
    bad_requests: int = 0


@dataclass(eq=False)
class ClassRuntime:
    """Statistics of one traffic class."""

    series: Series = field(default_factory=Series)
    requests: int = 0
    errors: int = 0


def record_whole(
    lane: LaneRuntime,
    klass: ClassRuntime,
    summary: RequestSummary,
    start: float,
    began: float,
    integral0: float,
    data: bytes,
) -> None:
    """Record a whole (non-streamed) 200 answer and teach the lane model."""
    now = time.monotonic()
    prompt, completion = usage_counts(data)
    concurrency = (lane.integral_now(now) - integral0) / max(1e-6, now - began)
    lane.perf.observe_total(prompt or summary.prompt_tokens, completion, now - began, concurrency)
    e2e = now - start
    lane.series.record(now, None, None, e2e, completion)
    klass.series.record(now, None, None, e2e, completion)


def record_stream(
    lane: LaneRuntime,
    klass: ClassRuntime,
    summary: RequestSummary,
    start: float,
    began: float,
    integral0: float,
    result: StreamResult,
) -> None:
    """Record a relayed stream (TTFT, ITL, tokens) and teach the lane model."""
    last_at = result.last_at
    if not last_at or result.upstream_error is not None:
        return
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


def build_snapshot(router: Router) -> RouterSnapshot:
    """Freeze the router's statistics as of now."""
    now = time.monotonic()
    cfg = router.config
    lanes = []
    for runtime in router.lanes():
        view = runtime.breaker.view(now)
        lanes.append(
            LaneStats(
                name=runtime.name,
                role=runtime.role,
                variant=runtime.lane.variant,
                accepting=runtime.eligible,
                in_flight=runtime.in_flight,
                limit=runtime.limit,
                outstanding_work=runtime.outstanding_work,
                breaker=str(view.state),
                breaker_failures=view.consecutive_failures,
                latency=runtime.series.stats(now),
                requests=runtime.counters.requests,
                failures=runtime.counters.failures,
                retried_away=runtime.counters.retried_away,
                spills=runtime.counters.spills,
                mid_stream_errors=runtime.counters.mid_stream_errors,
                disconnects=runtime.counters.disconnects,
                perf=runtime.perf.view(runtime.limit),
            )
        )
    classes = tuple(
        ClassStats(str(cls), c.series.stats(now), c.requests, c.errors)
        for cls, c in router.classes.items()
    )
    counters = router.counters
    return RouterSnapshot(
        policy=str(cfg.text_policy),
        long_text_min_tokens=cfg.long_text_min_tokens,
        taken_at=time.time(),
        window_s=Window().window_s,
        lanes=tuple(lanes),
        classes=classes,
        in_flight=router.total_in_flight(),
        queued=router.queued,
        queue_limit=cfg.queue_size,
        requests=counters.requests,
        retries=counters.retries,
        spills=counters.spills,
        rejected_queue_full=counters.rejected_queue_full,
        rejected_no_lane=counters.rejected_no_lane,
        mid_stream_errors=counters.mid_stream_errors,
        client_disconnects=counters.client_disconnects,
        bad_requests=counters.bad_requests,
    )
