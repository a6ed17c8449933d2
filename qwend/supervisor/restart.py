"""Restart policy (pure): exponential backoff with jitter, crash-loop detection.

Each unasked end of a lane (exit, failed start, unhealthy kill) is a *crash*.
The n-th crash within ``crash_loop_window_s`` waits ``min * 2**(n-1)`` seconds
(capped at ``max``) with "equal jitter" (a uniform draw in the upper half of
the delay, so lanes that crashed together do not restart together). More than
``crash_loop_limit`` restarts within the window means the lane is broken: the
policy gives up and the lane goes to ``failed`` until an operator resets it.

An *internal error* (qwend itself failed to supervise the lane, e.g. "Too many open
files" while probing) is not the lane's fault: it backs off the same way but never
counts toward the crash loop, so the lane comes back once the cause goes away.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from qwend.config.model import RestartConfig


@dataclass(frozen=True)
class Decision:
    """What to do after a crash."""

    give_up: bool
    """True: crash loop; do not restart."""
    delay_s: float
    """Seconds to wait before the restart (0 when giving up)."""
    crashes_in_window: int
    """Crashes within the window, this one included."""
    reason: str
    """One line for logs and the lane's ``reason``."""


def backoff_delay(cfg: RestartConfig, attempt: int, rng: random.Random) -> float:
    """Delay before restart number ``attempt`` (1-based), jittered, within [min, max]."""
    exponent = min(max(attempt - 1, 0), 32)  # 2**32 s is far past any sane max
    base = min(cfg.backoff_max_s, cfg.backoff_min_s * 2.0**exponent)
    jittered = rng.uniform(base / 2.0, base)
    return max(cfg.backoff_min_s, min(cfg.backoff_max_s, jittered))


class RestartPolicy:
    """Crash history of one lane and the decision after each crash."""

    def __init__(self, cfg: RestartConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self._rng = rng if rng is not None else random.Random()
        self._crashes: deque[float] = deque()
        self._errors = 0
        """Internal errors since the lane was last ready."""

    def _prune(self, now: float) -> None:
        horizon = now - self.cfg.crash_loop_window_s
        while self._crashes and self._crashes[0] <= horizon:
            self._crashes.popleft()

    def record_crash(self, now: float) -> Decision:
        """Record a crash at monotonic time ``now`` and decide."""
        self._prune(now)
        self._crashes.append(now)
        count = len(self._crashes)
        window = self.cfg.crash_loop_window_s
        if count > self.cfg.crash_loop_limit:
            reason = (
                f"crash loop: {count} crashes within {window:g}s"
                f" (limit {self.cfg.crash_loop_limit} restarts); reset the lane once fixed"
            )
            return Decision(True, 0.0, count, reason)
        delay = backoff_delay(self.cfg, count, self._rng)
        reason = (
            f"restart {count}/{self.cfg.crash_loop_limit} in {window:g}s window after {delay:.1f}s"
        )
        return Decision(False, delay, count, reason)

    def record_error(self) -> float:
        """Record an internal error; the delay before retrying (no crash-loop limit)."""
        self._errors += 1
        return backoff_delay(self.cfg, self._errors, self._rng)

    def clear_errors(self) -> None:
        """The lane became ready: the next internal error starts from the shortest delay."""
        self._errors = 0

    def reset(self) -> None:
        """Forget every crash and internal error (operator reset or start)."""
        self._crashes.clear()
        self._errors = 0

    def reconfigure(self, cfg: RestartConfig) -> None:
        """Apply a reloaded ``[restart]`` table, keeping the history."""
        self.cfg = cfg
