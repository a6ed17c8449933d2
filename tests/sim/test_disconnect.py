"""A client that goes away mid-generation is removed from the batch and counted as aborted."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import SimLaneFactory, metric_value, wait_for

ABORTED = "qwend_sim_requests_aborted_total"
RUNNING = "vllm:num_requests_running"
GENERATED = "vllm:generation_tokens_total"


def long_body(stream: bool) -> dict[str, object]:
    # 400 tokens at time-scale 20 take about 2 s: long enough to leave in the middle.
    return {"model": MODEL, "prompt": "go on", "max_tokens": 400, "stream": stream}


async def test_stream_disconnect_aborts_the_sequence(
    sim_lane: SimLaneFactory,
) -> None:
    lane = sim_lane(time_scale=20)
    url = f"{lane.openai_url}/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=long_body(True)) as resp:
        for _ in range(3):
            assert (await resp.content.readuntil(b"\n\n")).startswith(b"data: ")
        assert metric_value(lane.base_url, RUNNING) == 1.0
    # Leaving the block closed the connection mid-stream.
    wait_for(lambda: metric_value(lane.base_url, ABORTED) == 1.0, what="abort counted")
    assert metric_value(lane.base_url, RUNNING) == 0.0
    generated = metric_value(lane.base_url, GENERATED)
    assert generated < 400
    # What is tested is that nothing happens: in 0.3 s a live sequence makes ~60 tokens.
    await asyncio.sleep(0.3)
    assert metric_value(lane.base_url, GENERATED) == generated  # no longer generating


async def test_non_stream_disconnect_aborts_the_sequence(
    sim_lane: SimLaneFactory,
) -> None:
    lane = sim_lane(time_scale=20)
    timeout = aiohttp.ClientTimeout(total=0.4)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            async with session.post(f"{lane.openai_url}/completions", json=long_body(False)):
                pass
    wait_for(lambda: metric_value(lane.base_url, ABORTED) == 1.0, what="abort counted")
    assert metric_value(lane.base_url, RUNNING) == 0.0
    assert metric_value(lane.base_url, GENERATED) < 400


async def test_finished_requests_are_not_counted_as_aborted(
    sim_lane: SimLaneFactory,
) -> None:
    lane = sim_lane(time_scale=50)
    body = {"model": MODEL, "prompt": "short", "max_tokens": 3, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{lane.openai_url}/completions", json=body) as resp:
            assert (await resp.read()).endswith(b"data: [DONE]\n\n")
        async with session.post(
            f"{lane.openai_url}/completions", json={**body, "stream": False}
        ) as resp:
            assert resp.status == 200
    assert metric_value(lane.base_url, ABORTED) == 0.0
    assert metric_value(lane.base_url, GENERATED) == 6.0
