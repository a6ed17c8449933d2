"""The router's statistics snapshot (pure): the frozen picture the control API and the TUI show.

``RouterSnapshot`` holds router-wide counters, one ``LaneStats`` per lane and
one ``ClassStats`` per traffic class; ``qwend.router.router.Router.stats_snapshot``
builds it from the live state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from qwend.routing.perf import PerfView
from qwend.routing.windows import LatencyStats


@dataclass(frozen=True, slots=True)
class LaneStats:
    """One lane in a ``RouterSnapshot``."""

    name: str
    role: str
    variant: str
    accepting: bool
    """Eligible for new requests (active, accepting, breaker not open)."""
    in_flight: int
    limit: int
    """Admission limit (requests at once)."""
    outstanding_work: float
    """Expected output tokens of the requests it serves now."""
    breaker: str
    """``closed``, ``open`` or ``half_open``."""
    breaker_failures: int
    latency: LatencyStats
    requests: int
    """Attempts sent to the lane since start."""
    failures: int
    """Attempts that failed on the lane (connection errors, 5xx, 429, broken streams)."""
    retried_away: int
    """Failed attempts re-sent to another lane."""
    spills: int
    """Short text spilled to this lane instead of the throughput lane."""
    mid_stream_errors: int
    disconnects: int
    """Client disconnects while the lane was serving."""
    perf: PerfView


@dataclass(frozen=True, slots=True)
class ClassStats:
    """One traffic class (multimodal, short_text, long_text) in a ``RouterSnapshot``."""

    name: str
    latency: LatencyStats
    requests: int
    errors: int
    """Requests of this class that ended with an error status or error event."""


@dataclass(frozen=True, slots=True)
class RouterSnapshot:
    """Everything the router knows about its traffic, at one instant."""

    policy: str
    long_text_min_tokens: int
    taken_at: float
    """Wall-clock time (epoch seconds) of the snapshot."""
    window_s: float
    """Sliding window of the percentiles and tokens/s."""
    lanes: tuple[LaneStats, ...]
    classes: tuple[ClassStats, ...]
    in_flight: int
    queued: int
    queue_limit: int
    requests: int
    """Requests received (after JSON validation)."""
    retries: int
    """Extra attempts made on another lane before the first byte."""
    spills: int
    rejected_queue_full: int
    """429 answers: the queue was full or a request waited longer than the queue timeout."""
    rejected_no_lane: int
    """503 answers: no lane could serve the request."""
    mid_stream_errors: int
    """Streams that ended with an error event after the first byte."""
    client_disconnects: int
    bad_requests: int
    retries_refused: int = 0
    """Retries not sent because the router-wide retry budget was spent."""
    pd_requests: int = 0
    """Attempts sent to a prefill/decode pair (each counts on both lanes too)."""
    pd_transfer_failures: int = 0
    """Pair attempts whose KV hand-over failed (retried before the first byte)."""

    def lane(self, name: str) -> LaneStats:
        """The lane called ``name``; KeyError when absent."""
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (control API)."""
        return asdict(self)
