"""The router's live view of each lane: its slots, counters, windows and learned model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from qwend.config.model import KvRole
from qwend.routing.breaker import CircuitBreaker
from qwend.routing.lanetable import RoutableLane
from qwend.routing.perf import LanePerf
from qwend.routing.windows import Series


@dataclass(eq=False)
class LaneCounters:
    """Monotonic per-lane counters (the snapshot and /metrics read them)."""

    requests: int = 0
    failures: int = 0
    retried_away: int = 0
    spills: int = 0
    mid_stream_errors: int = 0
    disconnects: int = 0


@dataclass(eq=False)
class LaneRuntime:
    """The router's live view of one lane (satisfies ``routing.policy.LaneCandidate``)."""

    lane: RoutableLane
    limit: int
    breaker: CircuitBreaker
    perf: LanePerf = field(default_factory=LanePerf)
    series: Series = field(default_factory=Series)
    counters: LaneCounters = field(default_factory=LaneCounters)
    in_flight: int = 0
    outstanding_work: float = 0.0
    busy_integral: float = 0.0
    """Integral of in_flight over time (request-seconds): mean concurrency of a request."""
    changed_at: float = 0.0
    """Monotonic time ``in_flight`` last changed (``busy_integral`` is integrated up to it)."""
    last_resort: bool = False
    """Set by ``LaneSlots`` for a second policy pass when no lane could serve a request:
    a lane ejected for its failure rate (``breaker.degraded``) is eligible then."""
    progress_at: float = 0.0
    """Monotonic time the lane last sent data (headers, a chunk, a body) or became busy:
    the prober ejects a lane with requests in flight and no progress for ``stall_timeout_s``."""
    held: int = 0
    """Slots claimed for a pair's decode hop whose prefill hop still runs: nothing sent
    to the lane yet, so the stall clock ignores them (a long prefill is no hang here)."""
    _drained: asyncio.Event | None = None

    # LaneCandidate protocol
    @property
    def name(self) -> str:
        return self.lane.name

    @property
    def role(self) -> str:
        return self.lane.role

    @property
    def text(self) -> bool:
        return self.lane.text

    @property
    def image(self) -> bool:
        return self.lane.image

    @property
    def eligible(self) -> bool:
        lane = self.lane
        if not (lane.active and lane.accepting):
            return False
        breaker = self.breaker
        return breaker.closed or (self.last_resort and breaker.degraded)

    @property
    def pending(self) -> bool:
        return self.lane.pending and not self.eligible

    @property
    def kv_role(self) -> KvRole | None:
        return self.lane.kv_role

    @property
    def why_not(self) -> str:
        if not self.lane.active:
            return "standby"
        if not self.lane.accepting:
            return "not accepting (starting, draining or unhealthy)"
        if not self.breaker.closed:
            view = self.breaker.view(time.monotonic())
            return f"circuit breaker {view.state} ({view.reason})"
        return "busy" if self.in_flight >= self.limit else ""

    def _tick(self, now: float) -> None:
        self.busy_integral += self.in_flight * (now - self.changed_at)
        self.changed_at = now

    def occupy(self, now: float, work: float, *, sent: bool = True) -> None:
        """A request starts on this lane (``sent=False``: its slot is held for a pair's
        decode hop while the prefill hop runs; ``send_held`` when that hop goes out)."""
        self._tick(now)
        if self.in_flight == self.held:
            self.progress_at = now  # an idle lane owes nothing yet: the stall clock starts
        self.in_flight += 1
        self.outstanding_work += work
        if sent:
            self.counters.requests += 1
        else:
            self.held += 1

    def send_held(self, now: float) -> None:
        """A held slot's hop is sent now: it counts as a request, and data is owed."""
        self.unhold()
        self.counters.requests += 1
        if self.in_flight - self.held == 1:
            self.progress_at = now  # nothing else was owed: the stall clock starts now

    def unhold(self) -> None:
        """A held slot is no longer waiting (sent, or given back unused)."""
        self.held -= 1

    @property
    def awaited(self) -> int:
        """Requests sent to the lane and not finished (held slots owe no data yet)."""
        return self.in_flight - self.held

    def release(self, now: float, work: float) -> None:
        """A request on this lane ended (however it ended)."""
        self._tick(now)
        self.in_flight -= 1
        self.outstanding_work = max(0.0, self.outstanding_work - work)
        if self.in_flight == 0 and self._drained is not None:
            self._drained.set()

    def integral_now(self, now: float) -> float:
        """``busy_integral`` brought up to ``now``."""
        return self.busy_integral + self.in_flight * (now - self.changed_at)

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False on timeout."""
        if self.in_flight == 0:
            return True
        if self._drained is None or self._drained.is_set():
            self._drained = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._drained.wait()
        except TimeoutError:
            return self.in_flight == 0
        return True
