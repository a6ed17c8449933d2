"""The router in front of real ``qwend-sim`` lanes (subprocesses on loopback)."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest

from qwend.config.model import RouterConfig
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.router_fakes import run_router, until
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import (
    IMAGE_MESSAGE,
    SimLaneFactory,
    SimLaneProcess,
    collect_stream,
    metric_value,
    msg,
    wait_for,
)

ABORTED = "qwend_sim_requests_aborted_total"
RUNNING = "vllm:num_requests_running"


def lane_of(name: str, sim: SimLaneProcess, role: str, variant: str) -> RoutableLane:
    image = role == "multimodal"
    return RoutableLane(name, role, variant, sim.base_url, True, image, True, True, MODEL)


def seed_topology(
    sim_lane: SimLaneFactory, time_scale: float = 20, extra: tuple[str, ...] = ()
) -> LaneTable:
    """The seed's three lanes: multimodal, stable (recurrent_v2), throughput (v3)."""
    mm = sim_lane(variant="v3", time_scale=time_scale, lane_name="mm", extra=extra)
    stable = sim_lane(
        variant="recurrent_v2", time_scale=time_scale, lane_name="stable", extra=extra
    )
    fast = sim_lane(variant="v3", time_scale=time_scale, lane_name="fast", extra=extra)
    return LaneTable(
        (
            lane_of("mm", mm, "multimodal", "v3"),
            lane_of("stable", stable, "stable", "recurrent_v2"),
            lane_of("fast", fast, "throughput", "v3"),
        )
    )


async def test_openai_package_through_the_router_on_sim_lanes(sim_lane: SimLaneFactory) -> None:
    table = seed_topology(sim_lane)
    async with run_router(table) as h:
        client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=msg("Say hello."), max_tokens=8
            )
            assert raw.headers["x-qwend-lane"] == "fast"
            reply = raw.parse()
            assert reply.choices[0].message.content
            assert reply.usage is not None and reply.usage.completion_tokens == 8

            done = await client.completions.create(model=MODEL, prompt="Once upon", max_tokens=5)
            assert done.choices[0].text and done.usage is not None

            stream = await client.chat.completions.create(
                model=MODEL,
                messages=msg("Count."),
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
            text, usage = await collect_stream(stream)
            assert text and usage is not None and usage.completion_tokens == 12

            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=IMAGE_MESSAGE, max_tokens=8
            )
            assert raw.headers["x-qwend-lane"] == "mm"
            assert raw.parse().choices[0].message.content

            models = await client.models.list()
            assert [m.id for m in models.data] == [MODEL]

            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(
                    model=MODEL, messages=msg("x"), max_tokens=100_000
                )
        finally:
            await client.close()
        snap = h.router.stats_snapshot()
        assert snap.lane("fast").latency.ttft.count >= 1
        assert snap.in_flight == 0


async def test_balanced_long_text_on_sim_lanes(sim_lane: SimLaneFactory) -> None:
    table = seed_topology(sim_lane, time_scale=10)
    async with run_router(table) as h, aiohttp.ClientSession() as s:
        url = h.url + "/v1/chat/completions"

        async def lane_for(max_tokens: int, hold: asyncio.Event | None = None) -> str:
            body = {"model": MODEL, "messages": msg("hi"), "max_tokens": max_tokens, "stream": True}
            async with s.post(url, json=body) as r:
                assert r.status == 200
                if hold is not None:
                    await r.content.readuntil(b"\n\n")
                    hold.set()
                await r.read()
                return r.headers["X-Qwend-Lane"]

        # Short text: the idle throughput lane first.
        assert await lane_for(8) == "fast"
        # While throughput is busy, the next short text spills to the idle stable lane.
        started = asyncio.Event()
        busy = asyncio.create_task(lane_for(64, started))
        await started.wait()
        assert h.router.in_flight("fast") == 1
        assert await lane_for(8) == "stable"
        assert await busy == "fast"
        # Long text is balanced across throughput and stable by outstanding work.
        lanes = await asyncio.gather(*(lane_for(64) for _ in range(4)))
        assert sorted(lanes) == ["fast", "fast", "stable", "stable"]
        snap = h.router.stats_snapshot()
        assert snap.spills >= 1 and snap.lane("mm").requests == 0


async def test_killed_lane_requests_succeed_elsewhere(sim_lane: SimLaneFactory) -> None:
    fast = sim_lane(variant="v3", time_scale=20, lane_name="fast")
    stable = sim_lane(variant="recurrent_v2", time_scale=20, lane_name="stable")
    table = LaneTable(
        (
            lane_of("fast", fast, "throughput", "v3"),
            lane_of("stable", stable, "stable", "recurrent_v2"),
        )
    )
    config = RouterConfig(max_in_flight_per_lane=2, queue_size=64)
    async with run_router(table, config) as h, aiohttp.ClientSession() as s:
        url = h.url + "/v1/chat/completions"

        async def one() -> tuple[int, str]:
            body = {"model": MODEL, "messages": msg("hi"), "max_tokens": 16}
            async with s.post(url, json=body) as r:
                await r.read()
                return r.status, r.headers.get("X-Qwend-Lane", "")

        requests = [asyncio.create_task(one()) for _ in range(16)]
        await until(lambda: h.router.in_flight("fast") == 2 and h.queued > 0)
        fast.proc.kill()  # the supervisor has not noticed: the lane still looks accepting
        results = await asyncio.gather(*requests)
        assert [status for status, _ in results] == [200] * 16
        assert all(lane == "stable" for _, lane in results[-8:])
        snap = h.router.stats_snapshot()
        assert snap.retries >= 1 and snap.in_flight == 0 and snap.queued == 0


async def test_mid_stream_lane_death_gives_a_clean_error_event(sim_lane: SimLaneFactory) -> None:
    fast = sim_lane(variant="v3", time_scale=5, lane_name="fast")
    table = LaneTable((lane_of("fast", fast, "throughput", "v3"),))
    async with run_router(table) as h:
        client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model=MODEL, messages=msg("talk"), max_tokens=200, stream=True
            )
            got = 0
            with pytest.raises(openai.APIError, match="mid-stream"):
                async for _ in stream:
                    got += 1
                    if got == 3:
                        fast.proc.kill()
            assert got >= 3
        finally:
            await client.close()
        snap = h.router.stats_snapshot()
        assert snap.mid_stream_errors == 1 and snap.in_flight == 0


async def test_full_queue_is_429_on_sim_lanes(sim_lane: SimLaneFactory) -> None:
    fast = sim_lane(variant="v3", time_scale=5, lane_name="fast")
    table = LaneTable((lane_of("fast", fast, "throughput", "v3"),))
    config = RouterConfig(max_in_flight_per_lane=1, queue_size=1)
    async with run_router(table, config) as h, aiohttp.ClientSession() as s:
        url = h.url + "/v1/chat/completions"
        body = {"model": MODEL, "messages": msg("hi"), "max_tokens": 16}
        first = asyncio.create_task(s.post(url, json=body))
        await until(lambda: h.router.in_flight("fast") == 1)
        second = asyncio.create_task(s.post(url, json=body))
        await until(lambda: h.queued == 1)
        async with s.post(url, json=body) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["type"] == "rate_limit_error"
        for task in (first, second):
            resp = await task
            assert resp.status == 200
            resp.release()


@pytest.mark.parametrize("stream", [False, True])
async def test_client_disconnect_aborts_sim_generation(
    sim_lane: SimLaneFactory, stream: bool
) -> None:
    fast = sim_lane(variant="v3", time_scale=20, lane_name="fast")
    table = LaneTable((lane_of("fast", fast, "throughput", "v3"),))
    async with run_router(table) as h, aiohttp.ClientSession() as s:
        body = {"model": MODEL, "prompt": "go on", "max_tokens": 400, "stream": stream}

        async def client() -> None:
            async with s.post(h.url + "/v1/completions", json=body) as r:
                await r.content.readuntil(b"\n\n")
                await asyncio.Event().wait()

        task = asyncio.create_task(client())
        await until(lambda: h.router.in_flight("fast") == 1)
        await asyncio.to_thread(
            wait_for, lambda: metric_value(fast.base_url, RUNNING) == 1.0, what="generating"
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(
            wait_for, lambda: metric_value(fast.base_url, ABORTED) == 1.0, 5.0, "abort counted"
        )
        await until(lambda: h.router.in_flight("fast") == 0)
        assert h.router.stats_snapshot().client_disconnects == 1


@pytest.mark.slow
async def test_no_counter_leaks_after_1000_mixed_requests(sim_lane: SimLaneFactory) -> None:
    table = seed_topology(
        sim_lane, time_scale=200, extra=("--error-rate", "0.1", "--error-status", "503")
    )
    config = RouterConfig(max_in_flight_per_lane=4, queue_size=32, queue_timeout_s=5)
    statuses: dict[int, int] = {}
    async with run_router(table, config) as h, aiohttp.ClientSession() as s:
        url = h.url + "/v1/chat/completions"

        async def one(i: int) -> None:
            stream = i % 2 == 0
            messages = IMAGE_MESSAGE if i % 5 == 0 else msg("hello")
            body = {
                "model": MODEL,
                "messages": messages,
                "max_tokens": 8 + (i % 4) * 16,
                "stream": stream,
            }
            if i % 9 == 0:  # a client that leaves early
                try:
                    async with asyncio.timeout(0.01), s.post(url, json=body) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1  # it was quick
                except TimeoutError:
                    statuses[-1] = statuses.get(-1, 0) + 1
                return
            if i % 13 == 0:
                async with s.post(url, data=b"{bad") as r:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                return
            async with s.post(url, json=body) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1

        for start in range(0, 1000, 50):
            await asyncio.gather(*(one(i) for i in range(start, start + 50)))
        await until(lambda: h.idle, 10)
        snap = h.router.stats_snapshot()
    assert sum(statuses.values()) == 1000
    assert set(statuses) <= {-1, 200, 400, 429, 500, 503}, statuses
    assert statuses[200] > 600
    assert all(lane.in_flight == 0 and lane.outstanding_work == 0 for lane in snap.lanes)
    assert snap.retries > 0, statuses
