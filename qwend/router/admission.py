"""Admission control: per-lane slots and one bounded FIFO queue.

A request first asks the policy for a lane with a free slot. When every
eligible lane is at its in-flight limit it waits in a FIFO queue (bounded:
a full queue is refused at once) until a slot frees up or its timeout passes.
Whenever a slot is released or the lane set changes, waiters are re-offered
lanes in arrival order, so a waiter that cannot be placed (an image request
waiting for the multimodal lane) does not hold up text behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from qwend.routing.breaker import CircuitBreaker
from qwend.routing.lanetable import RoutableLane
from qwend.routing.perf import LanePerf
from qwend.routing.policy import Decision
from qwend.routing.windows import Series


class QueueFull(Exception):
    """The admission queue already holds ``queue_size`` requests."""


class QueueTimeout(Exception):
    """A queued request waited longer than the queue timeout."""


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
    """The router's live view of one lane (satisfies ``routing.LaneCandidate``)."""

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
    _changed_at: float = 0.0
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
        return lane.active and lane.accepting and self.breaker.available(time.monotonic())

    @property
    def why_not(self) -> str:
        if not self.lane.active:
            return "standby"
        if not self.lane.accepting:
            return "not accepting (starting, draining or unhealthy)"
        if not self.breaker.available(time.monotonic()):
            return "circuit breaker open after repeated failures"
        return "busy" if self.in_flight >= self.limit else ""

    def _tick(self, now: float) -> None:
        self.busy_integral += self.in_flight * (now - self._changed_at)
        self._changed_at = now

    def occupy(self, now: float, work: float) -> None:
        """A request starts on this lane."""
        self._tick(now)
        self.in_flight += 1
        self.outstanding_work += work
        self.counters.requests += 1

    def release(self, now: float, work: float) -> None:
        """A request on this lane ended (however it ended)."""
        self._tick(now)
        self.in_flight -= 1
        self.outstanding_work = max(0.0, self.outstanding_work - work)
        if self.in_flight == 0 and self._drained is not None:
            self._drained.set()

    def integral_now(self, now: float) -> float:
        """``busy_integral`` brought up to ``now``."""
        return self.busy_integral + self.in_flight * (now - self._changed_at)

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


Picker = Callable[[], Decision]
"""Runs the policy against the current lanes; returns a Decision."""
Grant = Callable[[Decision], None]
"""Claims the chosen lane's slot at once (before any other waiter is served)."""


class Admission:
    """The bounded FIFO queue in front of the lanes' slots."""

    def __init__(self, queue_size: int, queue_timeout_s: float) -> None:
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self._waiters: deque[tuple[Picker, Grant, asyncio.Future[Decision]]] = deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    async def admit(
        self, pick: Picker, grant: Grant, ungrant: Grant, timeout: float | None = None
    ) -> Decision:
        """A lane with its slot claimed, or a Decision without lane (no eligible lane).

        Raises QueueFull or QueueTimeout. ``ungrant`` gives a slot back when the
        waiter was cancelled right after being granted one (no leaked slot).
        """
        decision = pick()
        if decision.lane is not None:
            grant(decision)
            return decision
        if not decision.wait:
            return decision
        if len(self._waiters) >= self.queue_size:
            raise QueueFull
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        entry = (pick, grant, future)
        self._waiters.append(entry)
        wait_s = self.queue_timeout_s if timeout is None else min(timeout, self.queue_timeout_s)
        try:
            async with asyncio.timeout(max(0.0, wait_s)):
                return await future
        except BaseException as exc:
            if future.done() and not future.cancelled() and future.result().lane is not None:
                ungrant(future.result())
            if isinstance(exc, TimeoutError):
                raise QueueTimeout from None
            raise
        finally:
            if not future.done():
                future.cancel()
            self._remove(entry)

    def _remove(self, entry: tuple[Picker, Grant, asyncio.Future[Decision]]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(entry)

    def wake(self) -> None:
        """Offer slots to waiters in arrival order (call after a release or a lane change)."""
        if not self._waiters:
            return
        for entry in tuple(self._waiters):
            pick, grant, future = entry
            if future.done():
                continue
            decision = pick()
            if decision.lane is not None:
                grant(decision)
                future.set_result(decision)
                self._remove(entry)
            elif not decision.wait:
                future.set_result(decision)
                self._remove(entry)
