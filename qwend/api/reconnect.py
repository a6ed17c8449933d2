"""Reconnect delays for clients that follow the daemon's event stream (pure).

``qwenctl events`` and qwen-tui keep following across a daemon restart or crash:
after the stream breaks they wait ``delay(attempt)`` before the next try, doubling
from ``INITIAL_S`` up to ``CAP_S`` so a daemon that is down for long is polled every
few seconds, not hammered; the jitter keeps many clients from reconnecting in step.
"""

from __future__ import annotations

import random

INITIAL_S = 0.5
"""First delay: a restarting daemon is usually back within a second or two."""
CAP_S = 10.0
"""Longest delay: a daemon that comes back is noticed within this."""


def delay(attempt: int, *, jitter: float | None = None) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based); ``jitter`` in [0, 1) for tests."""
    base = min(CAP_S, INITIAL_S * 2.0 ** max(0, attempt - 1))
    fraction = random.random() if jitter is None else jitter
    return base * (0.8 + 0.4 * fraction)
