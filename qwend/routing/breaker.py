"""Per-lane circuit breaker with outlier ejection: a small pure state machine, injected clock.

Closed: traffic flows. The breaker opens (the lane is ejected) on
``threshold`` consecutive failures, or when at least ``failure_ratio`` of the
requests in the last ``window_s`` seconds failed (once ``min_requests`` were
seen there): a lane failing every other request never sees five failures in
a row, and its fast failures make it look idle, so it would draw most of the
traffic. The router also ejects a lane whose in-flight requests stopped
making progress (``trip``, see ``stalled``).
Open: no client request goes to the lane until ``cooldown_s`` passed; then it
is half-open and the router sends one synthetic probe request of its own
(``needs_probe``, ``on_probe_start``, ``on_probe_result``). Client requests
never act as probes, so a probe that stalls holds no client and no role.
The probe's success closes the breaker (with a fresh window), its failure
opens it again for another cool-down. ``reset`` forgets everything (the lane
restarted or runs another configuration).
Every method takes ``now`` (monotonic seconds) so tests need no sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from qwend.routing.outcomes import HitWindow


class BreakerState(StrEnum):
    """Where a lane's breaker stands."""

    CLOSED = "closed"
    """Healthy: every request may go to the lane."""
    OPEN = "open"
    """Tripped (ejected): no request goes to the lane until the cool-down is over."""
    HALF_OPEN = "half_open"
    """Cool-down over: the router's own probe request decides between closed and open."""


class TripReason(StrEnum):
    """Why a breaker last opened."""

    NONE = ""
    """Never opened (or reset since)."""
    CONSECUTIVE = "consecutive failures"
    FAILURE_RATE = "failure rate"
    STALLED = "no progress on in-flight requests"
    PROBE = "not answering its probe"


@dataclass(frozen=True)
class BreakerSettings:
    """The router's breaker configuration (``[router]`` ``breaker_*``)."""

    threshold: int = 5
    """Consecutive failures that open the breaker."""
    cooldown_s: float = 10.0
    """Time an open breaker waits before the router probes the lane."""
    failure_ratio: float = 0.3
    """Fraction of failed requests in the window that opens the breaker."""
    min_requests: int = 10
    """Requests the window must hold before ``failure_ratio`` applies."""
    window_s: float = 10.0
    """Length of the sliding window of outcomes."""


@dataclass(frozen=True)
class BreakerView:
    """A read-only picture of a breaker for statistics and the control API."""

    state: BreakerState
    """State at the time of the view (an elapsed cool-down shows as half_open)."""
    consecutive_failures: int
    """Failures since the last success."""
    opened: int
    """How many times the breaker opened since it was created."""
    reason: TripReason = TripReason.NONE
    """Why it last opened."""
    window: tuple[int, int] = (0, 0)
    """``(requests, failures)`` in the sliding window."""


def stalled(in_flight: int, progress_at: float, now: float, stall_s: float) -> bool:
    """Does a lane with ``in_flight`` requests, last heard from at ``progress_at``, hang?"""
    return in_flight > 0 and now - progress_at >= stall_s


class CircuitBreaker:
    """Consecutive-failure and failure-rate breaker with a cool-down and a router probe."""

    __slots__ = (
        "_cooldown_until",
        "_failures",
        "_opened",
        "_probe_out",
        "_reason",
        "_state",
        "_window",
        "settings",
    )

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        settings = settings or BreakerSettings()
        if settings.threshold < 1:
            raise ValueError("breaker threshold must be at least 1")
        self.settings = settings
        self._window = HitWindow(settings.window_s)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened = 0
        self._cooldown_until = 0.0
        self._probe_out = False
        self._reason = TripReason.NONE

    def configure(self, settings: BreakerSettings) -> None:
        """Take reloaded settings (a new window length starts an empty window)."""
        if settings.window_s != self.settings.window_s:
            self._window = HitWindow(settings.window_s)
        self.settings = settings

    def state(self, now: float) -> BreakerState:
        """The current state; an open breaker whose cool-down elapsed reads half_open."""
        if self._state is BreakerState.OPEN and now >= self._cooldown_until:
            return BreakerState.HALF_OPEN
        return self._state

    def available(self, now: float) -> bool:
        """May a client request be sent now? Only when closed (policy reads this)."""
        return self._state is BreakerState.CLOSED

    @property
    def closed(self) -> bool:
        """Closed: no ejection in force (cheaper than ``state``, no clock needed)."""
        return self._state is BreakerState.CLOSED

    @property
    def reason(self) -> TripReason:
        """Why it last opened (decides how the router probes it)."""
        return self._reason

    @property
    def degraded(self) -> bool:
        """Ejected for its failure rate only: it still serves part of its requests, so the
        router may use it as a last resort when no other lane can serve a request."""
        return self._reason is TripReason.FAILURE_RATE and self._state is not BreakerState.CLOSED

    def needs_probe(self, now: float) -> bool:
        """Half-open and no probe out: the router should send its probe now."""
        return self.state(now) is BreakerState.HALF_OPEN and not self._probe_out

    def on_probe_start(self, now: float) -> None:
        """The router's probe request went out."""
        if self.state(now) is BreakerState.HALF_OPEN:
            self._state = BreakerState.HALF_OPEN
            self._probe_out = True

    def on_probe_result(self, now: float, ok: bool) -> None:
        """The probe ended: success closes with a fresh window, failure opens again."""
        self._probe_out = False
        if self._state is not BreakerState.HALF_OPEN:
            return  # reset (lane restarted) while the probe ran: its verdict is stale
        if ok:
            self._close()
        else:  # keep why it was ejected; a stalled lane that fails its probe is dead
            dead = self._reason in (TripReason.STALLED, TripReason.PROBE)
            self._open(now, self.settings.cooldown_s, TripReason.PROBE if dead else self._reason)

    def on_success(self, now: float) -> None:
        """A client request went well (it does not close an open breaker: the probe does)."""
        self._failures = 0
        self._window.add(now, False)

    def on_failure(self, now: float) -> None:
        """A client request failed (connection error, 5xx, broken or idle stream)."""
        self._failures += 1
        self._window.add(now, True)
        if self._state is not BreakerState.CLOSED:
            return
        if self._failures >= self.settings.threshold:
            self._open(now, self.settings.cooldown_s, TripReason.CONSECUTIVE)
            return
        total, failed = self._window.counts(now)
        s = self.settings
        if total >= s.min_requests and failed >= s.failure_ratio * total:
            self._open(now, s.cooldown_s, TripReason.FAILURE_RATE)

    def trip(self, now: float, reason: TripReason, cooldown_s: float = 0.0) -> None:
        """Eject at once (a hung lane): probed after ``cooldown_s`` (0: right away)."""
        if self._state is BreakerState.CLOSED:
            self._open(now, cooldown_s, reason)

    def reset(self) -> None:
        """Forget failures and ejection (the lane restarted or runs another config)."""
        self._close()
        self._probe_out = False
        self._reason = TripReason.NONE

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._window.clear()

    def _open(self, now: float, cooldown_s: float, reason: TripReason) -> None:
        if self._state is BreakerState.CLOSED:
            self._opened += 1
        self._state = BreakerState.OPEN
        self._cooldown_until = now + cooldown_s
        self._reason = reason

    def view(self, now: float) -> BreakerView:
        """Snapshot for statistics."""
        return BreakerView(
            self.state(now), self._failures, self._opened, self._reason, self._window.counts(now)
        )
