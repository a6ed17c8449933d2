"""Admission (slots, FIFO queue, 429/503), client disconnects, breaker, counter hygiene."""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp

from qwend.config.model import RouterConfig, TextPolicy
from qwend.routing.lanetable import LaneTable
from tests.support.polling import SLACK_S
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, run_router, until


async def post(
    s: aiohttp.ClientSession, url: str, body: object
) -> tuple[int, dict[str, str], bytes]:
    async with s.post(url + "/v1/chat/completions", json=body) as r:
        return r.status, dict(r.headers), await r.read()


async def test_full_queue_answers_429_with_retry_after() -> None:
    config = RouterConfig(max_in_flight_per_lane=1, queue_size=1, queue_timeout_s=10)
    async with fake_lanes(FakeLane("fast", hang=True)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            running = asyncio.create_task(post(s, h.url, chat()))
            await until(lambda: h.router.in_flight("fast") == 1)
            queued = asyncio.create_task(post(s, h.url, chat()))
            await until(lambda: h.queued == 1)
            status, headers, body = await post(s, h.url, chat())
            assert status == 429 and headers["Retry-After"] == "1"
            assert json.loads(body)["error"]["code"] == "queue_full"
            assert h.router.stats_snapshot().rejected_queue_full == 1
            running.cancel()
            queued.cancel()
            await asyncio.gather(running, queued, return_exceptions=True)
            await until(lambda: h.router.in_flight("fast") == 0 and h.queued == 0)


async def test_queue_timeout_answers_429() -> None:
    config = RouterConfig(max_in_flight_per_lane=1, queue_size=4, queue_timeout_s=0.2)
    async with fake_lanes(FakeLane("fast", hang=True)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            running = asyncio.create_task(post(s, h.url, chat()))
            await until(lambda: h.router.in_flight("fast") == 1)
            status, headers, body = await post(s, h.url, chat())
            assert status == 429 and "Retry-After" in headers
            assert json.loads(body)["error"]["code"] == "queue_timeout"
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await until(lambda: h.router.in_flight("fast") == 0 and h.queued == 0)


async def test_queued_request_is_served_when_a_slot_frees() -> None:
    config = RouterConfig(max_in_flight_per_lane=1, queue_size=4)
    async with fake_lanes(FakeLane("fast", delay_s=0.05)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            results = await asyncio.gather(*(post(s, h.url, chat()) for _ in range(4)))
    assert [r[0] for r in results] == [200] * 4
    assert fast.requests == 4


async def test_queued_requests_get_503_when_their_lanes_disappear() -> None:
    config = RouterConfig(max_in_flight_per_lane=1, queue_size=4)
    async with fake_lanes(FakeLane("fast", hang=True)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            running = asyncio.create_task(post(s, h.url, chat()))
            await until(lambda: h.router.in_flight("fast") == 1)
            queued = asyncio.create_task(post(s, h.url, chat()))
            await until(lambda: h.queued == 1)
            table.replace((routable("fast", fast.url, "throughput", accepting=False),))
            status, headers, _ = await queued
            assert status == 503 and "Retry-After" in headers
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def _disconnect_aborts_upstream(stream: bool) -> None:
    async with fake_lanes(FakeLane("fast", hang=not stream, chunks=2, gate=asyncio.Event())) as (
        fast,
    ):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h, aiohttp.ClientSession() as session:

            async def client() -> None:
                body = chat(stream=stream)
                async with session.post(h.url + "/v1/chat/completions", json=body) as resp:
                    await resp.content.readuntil(b"\n\n")
                    await asyncio.Event().wait()

            task = asyncio.create_task(client())
            await asyncio.wait_for(fast.started.wait(), 5)
            if stream:
                await until(lambda: h.router.stats_snapshot().lane("fast").in_flight == 1)
            gone = time.monotonic()
            task.cancel()  # closes the client's connection
            await asyncio.gather(task, return_exceptions=True)
            await until(lambda: fast.aborts == 1)
            # Prompt (a 50 ms watch); the figure is in benchmarks/disconnect_abort.py.
            assert fast.abort_times[0] - gone < SLACK_S
            await until(lambda: h.router.in_flight("fast") == 0)
            snap = h.router.stats_snapshot()
            assert snap.client_disconnects >= 1
            assert snap.lane("fast").breaker == "closed" and snap.lane("fast").failures == 0


async def test_client_disconnect_aborts_upstream_non_streaming() -> None:
    await _disconnect_aborts_upstream(stream=False)


async def test_client_disconnect_aborts_upstream_streaming() -> None:
    await _disconnect_aborts_upstream(stream=True)


async def test_breaker_opens_and_probes_after_cooldown() -> None:
    config = RouterConfig(breaker_failure_threshold=2, breaker_cooldown_s=0.3, retry_budget=0)
    async with fake_lanes(FakeLane("fast", status=502), FakeLane("stable")) as (fast, st):
        table = LaneTable(
            (routable("fast", fast.url, "throughput"), routable("stable", st.url, "stable"))
        )
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            for _ in range(2):
                status, _, _ = await post(s, h.url, chat())
                assert status == 502
            assert h.router.stats_snapshot().lane("fast").breaker == "open"
            _, headers, _ = await post(s, h.url, chat())
            assert headers["X-Qwend-Lane"] == "stable"
            fast.status = 200
            # The router probes the lane itself (no client request is the probe).
            await until(lambda: h.router.stats_snapshot().lane("fast").breaker == "closed")
            assert fast.probes >= 1
            _, headers, _ = await post(s, h.url, chat())
            assert headers["X-Qwend-Lane"] == "fast"


async def test_apply_config_switches_policy_and_limits() -> None:
    async with fake_lanes(FakeLane("a"), FakeLane("b")) as (a, b):
        table = LaneTable((routable("a", a.url, "general"), routable("b", b.url, "general")))
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            h.router.apply_config(
                RouterConfig(text_policy=TextPolicy.ROUND_ROBIN, max_in_flight_per_lane=3)
            )
            lanes = [(await post(s, h.url, chat()))[1]["X-Qwend-Lane"] for _ in range(4)]
            assert lanes == ["a", "b", "a", "b"]
            snap = h.router.stats_snapshot()
            assert snap.policy == "round_robin" and snap.lane("a").limit == 3


async def test_no_counter_leaks_under_mixed_errors_and_disconnects() -> None:
    config = RouterConfig(max_in_flight_per_lane=4, queue_size=8, queue_timeout_s=0.5)
    lanes = [
        FakeLane("fast", chunks=3, chunk_gap_s=0.001),
        FakeLane("stable", status=503),
        FakeLane("flaky", chunks=4, die_after=1),
    ]
    rng = random.Random(7)
    async with fake_lanes(*lanes):
        table = LaneTable(
            (
                routable("fast", lanes[0].url, "throughput"),
                routable("stable", lanes[1].url, "stable"),
                routable("flaky", lanes[2].url, "general"),
            )
        )
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:

            async def one(i: int) -> None:
                body = chat(max_tokens=rng.choice([8, 64]), stream=rng.random() < 0.5)
                if i % 7 == 0:
                    try:
                        async with asyncio.timeout(0.002):
                            await post(s, h.url, body)
                    except TimeoutError:
                        pass
                    return
                if i % 11 == 0:
                    async with s.post(h.url + "/v1/chat/completions", data=b"{") as r:
                        assert r.status == 400
                    return
                status, _, _ = await post(s, h.url, body)
                assert status in (200, 429, 503)

            for start in range(0, 300, 30):
                await asyncio.gather(*(one(i) for i in range(start, start + 30)))
            await until(lambda: h.idle)
            snap = h.router.stats_snapshot()
            assert all(lane.in_flight == 0 and lane.outstanding_work == 0 for lane in snap.lanes)
            assert snap.requests > 200
