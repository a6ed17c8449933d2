"""Per-lane circuit breaker: a small pure state machine with an injected clock.

Closed: traffic flows; consecutive failures are counted and ``threshold`` of
them open the breaker. Open: the lane gets no traffic until ``cooldown_s``
passed; then one probe request may go through (half-open). The probe's
success closes the breaker, its failure opens it again for another cool-down.
Every method takes ``now`` (monotonic seconds) so tests need no sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    """Where a lane's breaker stands."""

    CLOSED = "closed"
    """Healthy: every request may go to the lane."""
    OPEN = "open"
    """Tripped: no request goes to the lane until the cool-down is over."""
    HALF_OPEN = "half_open"
    """Cool-down over: a single probe request decides between closed and open."""


@dataclass(frozen=True)
class BreakerView:
    """A read-only picture of a breaker for statistics and the control API."""

    state: BreakerState
    """State at the time of the view (an elapsed cool-down shows as half_open)."""
    consecutive_failures: int
    """Failures since the last success."""
    opened: int
    """How many times the breaker opened since it was created."""


class CircuitBreaker:
    """Consecutive-failure breaker with a cool-down and a single half-open probe."""

    __slots__ = (
        "_failures",
        "_opened",
        "_opened_at",
        "_probe_out",
        "_state",
        "cooldown_s",
        "threshold",
    )

    def __init__(self, threshold: int = 5, cooldown_s: float = 10.0) -> None:
        if threshold < 1:
            raise ValueError("breaker threshold must be at least 1")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened = 0
        self._opened_at = 0.0
        self._probe_out = False

    def state(self, now: float) -> BreakerState:
        """The current state; an open breaker whose cool-down elapsed reads half_open."""
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return self._state

    def available(self, now: float) -> bool:
        """May a request be sent now? Does not change anything (policy reads this)."""
        if self._state is BreakerState.CLOSED:
            return True
        return self.state(now) is BreakerState.HALF_OPEN and not self._probe_out

    def on_attempt(self, now: float) -> None:
        """A request was sent to the lane; in half-open it is the one probe."""
        if self._state is BreakerState.CLOSED:
            return
        if self.state(now) is BreakerState.HALF_OPEN:
            self._state = BreakerState.HALF_OPEN
            self._probe_out = True

    def on_success(self) -> None:
        """The lane answered well: close and forget past failures."""
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_out = False

    def on_failure(self, now: float) -> None:
        """The lane failed a request (connection error, 5xx, broken stream)."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
            if self._state is not BreakerState.OPEN:
                self._opened += 1
            self._state = BreakerState.OPEN
            self._opened_at = now
            self._probe_out = False

    def on_neutral(self) -> None:
        """The attempt ended without a verdict (client left): free the probe slot."""
        self._probe_out = False

    def view(self, now: float) -> BreakerView:
        """Snapshot for statistics."""
        return BreakerView(self.state(now), self._failures, self._opened)
