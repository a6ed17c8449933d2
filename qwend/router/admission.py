"""Admission control: the one bounded FIFO queue in front of the lanes' slots.

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
from collections import deque
from collections.abc import Callable

from qwend.routing.policy import Decision


class QueueFull(Exception):
    """The admission queue already holds ``queue_size`` requests."""


class QueueTimeout(Exception):
    """A queued request waited longer than the queue timeout."""


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
