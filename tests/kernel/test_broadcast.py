"""The broadcast primitive: fan-out, the drop-oldest overflow policy, endings, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from qwend.broadcast import Broadcast, Subscription


async def take(subscription: Subscription[int]) -> list[int]:
    """Everything the subscription yields until it ends."""
    return [item async for item in subscription]


async def test_every_subscriber_gets_every_item_in_order() -> None:
    broadcast: Broadcast[int] = Broadcast(10)
    first, second = broadcast.subscribe(), broadcast.subscribe()
    for item in range(5):
        broadcast.publish(item)
    broadcast.close()
    assert await take(first) == [0, 1, 2, 3, 4]
    assert await take(second) == [0, 1, 2, 3, 4]


async def test_items_published_before_subscribing_are_not_received() -> None:
    broadcast: Broadcast[int] = Broadcast(10)
    broadcast.publish(1)
    late = broadcast.subscribe()
    broadcast.publish(2)
    broadcast.close()
    assert await take(late) == [2]


async def test_a_full_buffer_drops_its_oldest_items_and_counts_them() -> None:
    broadcast: Broadcast[int] = Broadcast(3)
    slow = broadcast.subscribe()
    for item in range(10):
        broadcast.publish(item)  # nobody reads: publish must neither block nor grow
    assert len(slow) == 3
    assert slow.dropped == 7
    broadcast.close()
    assert await take(slow) == [7, 8, 9]  # the newest always arrives


async def test_a_slow_subscriber_does_not_affect_a_fast_one() -> None:
    broadcast: Broadcast[int] = Broadcast(2)
    slow, fast = broadcast.subscribe(), broadcast.subscribe()
    got: list[int] = []
    for item in range(6):
        broadcast.publish(item)
        got.append(await anext(fast))
    assert got == [0, 1, 2, 3, 4, 5]
    assert fast.dropped == 0
    assert slow.dropped == 4 and len(slow) == 2


async def test_a_waiting_reader_wakes_up_for_the_next_item() -> None:
    broadcast: Broadcast[str] = Broadcast(5)
    subscription = broadcast.subscribe()
    waiting = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0)
    assert not waiting.done()
    broadcast.publish("x")
    assert await asyncio.wait_for(waiting, 5) == "x"


async def test_close_ends_each_subscription_after_what_it_buffered() -> None:
    broadcast: Broadcast[int] = Broadcast(5)
    subscription = broadcast.subscribe()
    reader = asyncio.create_task(take(subscription))
    broadcast.publish(1)
    broadcast.publish(2)
    broadcast.close()
    assert await asyncio.wait_for(reader, 5) == [1, 2]
    assert broadcast.subscribers == 0
    broadcast.publish(3)  # after close: nobody receives it, nothing fails


async def test_replay_comes_first_and_a_subscription_after_close_replays_then_ends() -> None:
    broadcast: Broadcast[int] = Broadcast(5)
    live = broadcast.subscribe(replay=[10, 11])
    broadcast.publish(12)
    broadcast.close()
    assert await take(live) == [10, 11, 12]
    assert await take(broadcast.subscribe(replay=[10, 11, 12])) == [10, 11, 12]
    assert broadcast.subscribers == 0


async def test_replay_longer_than_the_capacity_keeps_its_newest_items() -> None:
    broadcast: Broadcast[int] = Broadcast(2)
    subscription = broadcast.subscribe(replay=[1, 2, 3])
    broadcast.close()
    assert await take(subscription) == [2, 3]
    assert subscription.dropped == 1


async def test_closing_a_subscription_ends_it_and_unregisters_it() -> None:
    broadcast: Broadcast[int] = Broadcast(5)
    kept = broadcast.subscribe()
    with broadcast.subscribe() as left:
        broadcast.publish(1)
        assert broadcast.subscribers == 2
    assert broadcast.subscribers == 1
    assert await take(left) == []  # unread items are discarded
    closed = broadcast.subscribe()
    waiting = asyncio.create_task(take(closed))
    await asyncio.sleep(0)
    await closed.aclose()
    assert await asyncio.wait_for(waiting, 5) == []
    broadcast.publish(2)
    assert [await anext(kept), await anext(kept)] == [1, 2]
    assert broadcast.subscribers == 1


async def test_a_cancelled_wait_loses_no_item() -> None:
    broadcast: Broadcast[int] = Broadcast(5)
    subscription = broadcast.subscribe()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(subscription), 0.01)
    broadcast.publish(7)
    assert await asyncio.wait_for(anext(subscription), 5) == 7


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity of at least 1 item, not 0"):
        Broadcast[int](0)
