"""Counts over a sliding time window (pure, injected clock): outcomes and retry budgets.

``HitWindow`` counts events and how many of them were "hits" (failures, retries)
over the last ``window_s`` seconds, in a fixed ring of buckets: recording is
O(1) and allocation-free (it runs on every request), reading sums ten buckets.
``RetryBudget`` builds the router's retry budget on it: retries may be at most
``ratio`` of the requests seen in the window (plus a small floor, so a quiet
router can still retry), so a lane storm cannot multiply the load on the
healthy lanes.
"""

from __future__ import annotations

BUCKETS = 10
"""Buckets per window: the window slides in steps of ``window_s / BUCKETS``."""
RETRY_FLOOR = 10
"""Retries always allowed per window, whatever the request count (a quiet router)."""


class HitWindow:
    """Events and hits over the last ``window_s`` seconds, bucketed."""

    __slots__ = ("_bucket_s", "_epoch", "_hits", "_total")

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self._bucket_s = window_s / BUCKETS
        self._total = [0] * BUCKETS
        self._hits = [0] * BUCKETS
        self._epoch = 0
        """Index (time / bucket_s) of the newest bucket."""

    @property
    def window_s(self) -> float:
        """Length of the window."""
        return self._bucket_s * BUCKETS

    def _advance(self, now: float) -> int:
        epoch = int(now / self._bucket_s)
        gap = epoch - self._epoch
        if gap > 0:  # buckets between the newest and now are stale: empty them
            for step in range(1, min(gap, BUCKETS) + 1):
                slot = (self._epoch + step) % BUCKETS
                self._total[slot] = 0
                self._hits[slot] = 0
            self._epoch = epoch
        return self._epoch % BUCKETS

    def add(self, now: float, hit: bool) -> None:
        """Count one event at ``now`` (a hit when ``hit``)."""
        slot = self._advance(now)
        self._total[slot] += 1
        if hit:
            self._hits[slot] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """``(events, hits)`` in the window ending at ``now``."""
        self._advance(now)
        return sum(self._total), sum(self._hits)

    def clear(self) -> None:
        """Forget everything."""
        for slot in range(BUCKETS):
            self._total[slot] = 0
            self._hits[slot] = 0


class RetryBudget:
    """Retries allowed: ``ratio`` of the window's requests, plus ``RETRY_FLOOR``."""

    __slots__ = ("_window", "ratio")

    def __init__(self, ratio: float, window_s: float = 10.0) -> None:
        self.ratio = ratio
        self._window = HitWindow(window_s)

    def on_request(self, now: float) -> None:
        """A client request arrived."""
        self._window.add(now, False)

    def try_spend(self, now: float) -> bool:
        """May one more retry go out now? Counts it when it may."""
        total, retries = self._window.counts(now)
        if retries >= RETRY_FLOOR + self.ratio * (total - retries):
            return False
        self._window.add(now, True)
        return True
