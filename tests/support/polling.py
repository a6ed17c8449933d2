"""Waiting in tests: poll a condition until a deadline, never sleep a guessed time.

    await until(lambda: router.in_flight("fast") == 1)            # in the event loop
    wait_for(lambda: path.exists(), what="the state file")       # in plain code or a thread

Await an event where the code under test offers one; poll only state that is
observable no other way (counters, files, metrics, another process). Deadlines
are generous: they only decide how long a broken test takes to say so, so they
are sized for a loaded 2-core machine, not for a quiet one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEADLINE_S = 10.0
"""Default time a condition gets to become true before the test fails."""

SLACK_S = 10.0
"""What a wall-clock bound allows on top of the time a step should take: enough for a loaded
machine, far below the hang or timeout a bound is there to rule out. Exact figures belong
in benchmarks/."""


async def until(
    predicate: Callable[[], bool],
    timeout: float = DEADLINE_S,
    what: str = "condition",
    interval: float = 0.005,
) -> None:
    """Let the event loop run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_for(
    predicate: Callable[[], bool],
    timeout: float = DEADLINE_S,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Block until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
