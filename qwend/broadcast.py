"""One publisher, many subscribers, bounded memory: the fan-out behind every live stream.

Lane state changes, promotion progress, the control socket's merged event stream
and lane output followers all go through ``Broadcast``.

Overflow policy, the only one: every subscription buffers at most ``capacity``
items. When a subscriber has fallen that far behind, the *oldest* item in its
buffer is dropped to make room for the new one, and its ``dropped`` count goes up.
So ``publish`` never blocks and never fails, memory stays within ``capacity``
items per subscriber, a slow subscriber loses only its own oldest items (the
others are not affected), and the newest item, often the one that matters (a
lane's current state, a promotion's final record), always arrives.

A subscription is an async iterator with one reader. It ends once the broadcast
is closed and its buffer is empty, or at once when its reader closes it (``close``,
``aclose`` or leaving its ``with`` block). A subscription made after ``close()``
holds its replay items and then ends. Waiting for the next item may be cancelled
(``asyncio.wait_for``) without losing one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    """One subscriber's bounded buffer (see the module docstring)."""

    def __init__(self, broadcast: Broadcast[T], capacity: int, replay: Iterable[T]) -> None:
        self._broadcast = broadcast
        self._items: deque[T] = deque(maxlen=capacity)
        self._wakeup = asyncio.Event()
        self._ended = False
        self.dropped = 0
        """Items this subscriber lost because its buffer was full."""
        for item in replay:
            self._put(item)

    def _put(self, item: T) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # the deque drops the oldest item itself
        self._items.append(item)
        self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    def __len__(self) -> int:
        """Items buffered and not read yet."""
        return len(self._items)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    def close(self) -> None:
        """Stop receiving; the iteration ends now, unread items are discarded."""
        self._broadcast._discard(self)
        self._items.clear()
        self._end()

    async def aclose(self) -> None:
        """``close()``, for callers that close async iterators with ``aclose``."""
        self.close()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Broadcast(Generic[T]):
    """Sends every published item to every current subscription (see the module docstring)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a broadcast needs a capacity of at least 1 item, not {capacity}")
        self._capacity = capacity
        self._subscriptions: dict[Subscription[T], None] = {}  # insertion-ordered set
        self._closed = False

    @property
    def subscribers(self) -> int:
        """Subscriptions currently receiving."""
        return len(self._subscriptions)

    def subscribe(self, replay: Iterable[T] = ()) -> Subscription[T]:
        """A subscription receiving ``replay`` first, then every item published from now on."""
        subscription = Subscription(self, self._capacity, replay)
        if self._closed:
            subscription._end()
        else:
            self._subscriptions[subscription] = None
        return subscription

    def publish(self, item: T) -> None:
        """Hand ``item`` to every subscription; never blocks (a full buffer drops its oldest)."""
        for subscription in self._subscriptions:
            subscription._put(item)

    def close(self) -> None:
        """No more items: each subscription ends once its reader has taken what it buffered."""
        self._closed = True
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions:
            subscription._end()

    def _discard(self, subscription: Subscription[T]) -> None:
        self._subscriptions.pop(subscription, None)
