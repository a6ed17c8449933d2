"""Reconnect delays: doubling from ``first`` up to ``cap``, back to ``first`` after success."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for one stream's reconnect attempts (mutable: it counts failures)."""

    first: float = 0.5
    cap: float = 10.0
    _next: float = field(default=0.0, init=False)

    def failed(self) -> float:
        """The delay before the next attempt."""
        self._next = self.first if self._next <= 0 else min(self._next * 2, self.cap)
        return self._next

    def succeeded(self) -> None:
        self._next = 0.0
