"""The router's watchdog: cancels handlers whose client went away or whose time is up.

A vanished client aborts its upstream request at once (aiohttp only cancels
handlers itself with ``handler_cancellation=True``; this makes the router
independent of the runner). Expiry of the first-byte and overall deadlines is
checked here too, so no request pays for timers of its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from aiohttp import web

WATCH_INTERVAL_S = 0.05
"""How often in-flight requests are checked for a vanished client (bounds abort latency)."""


class Watched(Protocol):
    """What the watchdog reads on an in-flight request (an ``Exchange``) and marks on it."""

    @property
    def request(self) -> web.Request:
        """The client's request (its transport tells whether the client is still there)."""
        ...

    @property
    def expires_at(self) -> float:
        """Monotonic time of the deadline of the current step (infinity: none)."""
        ...

    expired: str | None
    """Set by the watchdog right before it cancels the handler for a deadline."""

    @property
    def awaiting_lane(self) -> object | None:
        """The lane runtime it waits on for a first answer (None: not waiting on one)."""
        ...

    timer: str
    """What fires at ``expires_at`` (the message of the timeout); the watchdog may set it."""


class Watchdog:
    """The in-flight requests by handler task, checked every ``WATCH_INTERVAL_S``."""

    def __init__(self) -> None:
        self._watched: dict[asyncio.Task[Any], Watched] = {}
        self._wakeup = asyncio.Event()

    def watch(self, task: asyncio.Task[Any], item: Watched) -> None:
        """Watch ``item``, served by ``task``, until ``unwatch``."""
        if not self._watched:
            self._wakeup.set()  # the loop sleeps while there is nothing to watch
        self._watched[task] = item

    def unwatch(self, task: asyncio.Task[Any]) -> None:
        """Stop watching what ``task`` serves."""
        del self._watched[task]

    def fail_over(self, lane: object, message: str) -> int:
        """Cancel the requests still waiting for ``lane``'s first answer, as timeouts with
        ``message``: nothing reached their clients, so they are retried on another lane.
        Returns how many."""
        count = 0
        for task, item in self._watched.items():
            if item.awaiting_lane is lane and item.expired is None:
                item.timer = message
                item.expired = "lane"
                task.cancel()
                count += 1
        return count

    async def run(self) -> None:
        """Every 50 ms: cancel handlers whose client went away or whose time is up."""
        while True:
            if not self._watched:
                self._wakeup.clear()
                await self._wakeup.wait()
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            for task, item in list(self._watched.items()):
                transport = item.request.transport
                if transport is None or transport.is_closing():
                    task.cancel()
                elif now >= item.expires_at and item.expired is None:
                    item.expired = "deadline"
                    task.cancel()
