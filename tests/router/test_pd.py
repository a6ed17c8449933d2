"""The router as the prefill/decode proxy in front of real ``qwend-sim`` lanes (1P2D)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai

from qwend.config.model import KvRole, RouterConfig
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.polling import until
from tests.support.router_fakes import run_router
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import SimLaneFactory, SimLaneProcess, collect_stream, msg

PREFILL = ["--kv-role", "prefill"]
STRICT_DECODE = ["--kv-role", "decode", "--kv-without", "refuse"]
"""A decode lane that refuses a request without transfer parameters: any request the
router sent it without the prefill hop fails the test."""


def pd_lane(name: str, sim: SimLaneProcess, kv_role: KvRole | None) -> RoutableLane:
    return RoutableLane(
        name, name, "v3", sim.base_url, True, False, True, True, MODEL, kv_role=kv_role
    )


def one_p_two_d(sim_lane: SimLaneFactory, time_scale: float = 20) -> dict[str, SimLaneProcess]:
    return {
        "p0": sim_lane(lane_name="p0", time_scale=time_scale, extra=PREFILL),
        "d0": sim_lane(lane_name="d0", time_scale=time_scale, extra=STRICT_DECODE),
        "d1": sim_lane(lane_name="d1", time_scale=time_scale, extra=STRICT_DECODE),
    }


def table_of(sims: dict[str, SimLaneProcess]) -> LaneTable:
    roles = {"p": KvRole.PREFILL, "d": KvRole.DECODE, "c": None}
    return LaneTable(tuple(pd_lane(n, s, roles[n[0]]) for n, s in sims.items()))


async def test_1p2d_under_load_streamed_and_not(sim_lane: SimLaneFactory) -> None:
    sims = one_p_two_d(sim_lane)
    async with run_router(table_of(sims)) as h:
        client = openai.AsyncOpenAI(base_url=h.url + "/v1", api_key="x", max_retries=0)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=msg("Say hello."), max_tokens=8
            )
            assert raw.headers["x-qwend-lane"] in ("p0>d0", "p0>d1")
            assert raw.headers["x-qwend-prefill-lane"] == "p0"
            reply = raw.parse()
            assert reply.model == MODEL and reply.choices[0].message.content
            assert reply.usage is not None and reply.usage.completion_tokens == 8

            async def streamed(i: int) -> int:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=msg(f"Count to {i}. " + "word " * 300),
                    max_tokens=24,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text, usage = await collect_stream(stream)
                assert text and usage is not None
                return int(usage.completion_tokens)

            async def whole(i: int) -> int:
                done = await client.completions.create(
                    model=MODEL, prompt=f"Once upon {i}", max_tokens=6
                )
                assert done.choices[0].text and done.usage is not None
                return int(done.usage.completion_tokens)

            jobs = [streamed(i) for i in range(12)] + [whole(i) for i in range(12)]
            counts = await asyncio.gather(*jobs)
            assert counts == [24] * 12 + [6] * 12
        finally:
            await client.close()
        snap = h.router.stats_snapshot()
        assert snap.pd_requests == 25 and snap.pd_transfer_failures == 0
        assert snap.lane("p0").requests == 25
        assert snap.lane("d0").requests > 0 and snap.lane("d1").requests > 0
        assert snap.lane("d0").requests + snap.lane("d1").requests == 25
        assert snap.retries == 0 and snap.in_flight == 0


async def post(session: aiohttp.ClientSession, url: str, **extra: Any) -> aiohttp.ClientResponse:
    body = {"model": MODEL, "prompt": "hello there", "max_tokens": 4, **extra}
    resp = await session.post(url + "/v1/completions", json=body)
    await resp.read()
    return resp


async def test_prefill_lane_killed_is_retried_on_another(sim_lane: SimLaneFactory) -> None:
    sims = one_p_two_d(sim_lane)
    sims["p1"] = sim_lane(lane_name="p1", time_scale=20, extra=PREFILL)
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        sims["p0"].stop()
        for _ in range(4):
            resp = await post(session, h.url)
            assert resp.status == 200, await resp.text()
            assert resp.headers["X-Qwend-Prefill-Lane"] == "p1"
        assert h.router.stats_snapshot().lane("p0").failures >= 1


async def test_decode_lane_killed_is_retried_on_another(sim_lane: SimLaneFactory) -> None:
    sims = one_p_two_d(sim_lane)
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        sims["d0"].stop()
        for _ in range(4):
            resp = await post(session, h.url, stream=False)
            assert resp.status == 200, await resp.text()
            assert resp.headers["X-Qwend-Lane"] == "p0>d1"
        snap = h.router.stats_snapshot()
        assert snap.lane("d0").failures >= 1 and snap.retries >= 1


async def test_prefill_answer_without_params_is_a_failed_attempt(
    sim_lane: SimLaneFactory,
) -> None:
    """A lane marked prefill that runs without a KV connector (``--kv-role both``) answers
    without transfer parameters: the decode lane is never sent the request bare."""
    sims = {
        "p0": sim_lane(lane_name="p0", time_scale=20),
        "d0": sim_lane(lane_name="d0", time_scale=20, extra=STRICT_DECODE),
    }
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        resp = await post(session, h.url)
        assert resp.status == 502
        error = (await resp.json())["error"]
        assert error["code"] == "kv_transfer_failed"
        assert "'p0' answered without kv_transfer_params" in error["message"]
        snap = h.router.stats_snapshot()
        assert snap.pd_transfer_failures == 1 and snap.lane("p0").failures == 1
        assert snap.lane("d0").requests == 0 and snap.lane("d0").in_flight == 0


async def test_no_pair_falls_back_to_colocated(sim_lane: SimLaneFactory) -> None:
    sims = {
        "p0": sim_lane(lane_name="p0", time_scale=20, extra=PREFILL),
        "c0": sim_lane(lane_name="c0", time_scale=20),
    }
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        resp = await post(session, h.url)
        assert resp.status == 200 and resp.headers["X-Qwend-Lane"] == "c0"
        assert h.router.stats_snapshot().lane("p0").requests == 0


async def test_a_kv_pull_that_fails_is_retried_with_another_prefill_lane(
    sim_lane: SimLaneFactory,
) -> None:
    """p0 drops its KV at once (``--kv-ttl-s 0.001``): the decode lane cannot pull it and
    answers ``kv_transfer_failed``; the router blames p0 and prefills again on p1."""
    sims = {
        "p0": sim_lane(lane_name="p0", time_scale=20, extra=[*PREFILL, "--kv-ttl-s", "0.001"]),
        "p1": sim_lane(lane_name="p1", time_scale=20, extra=PREFILL),
        "d0": sim_lane(lane_name="d0", time_scale=20, extra=STRICT_DECODE),
    }
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        resp = await post(session, h.url, stream=True)
        assert resp.status == 200, await resp.text()
        assert resp.headers["X-Qwend-Lane"] == "p1>d0"
        assert resp.headers["X-Qwend-Attempts"] == "2"
        snap = h.router.stats_snapshot()
        assert snap.pd_transfer_failures == 1 and snap.retries == 1
        assert snap.lane("d0").breaker == "closed" and snap.lane("d0").failures == 0


async def test_a_clients_transfer_params_never_reach_a_lane(sim_lane: SimLaneFactory) -> None:
    """A forged ``kv_transfer_params`` would make a lane with a KV connector pull from a
    host of the client's choosing: the router drops it, and the lane recomputes."""
    sims = {"c0": sim_lane(lane_name="c0", time_scale=20, extra=["--kv-role", "decode"])}
    forged = {"do_remote_prefill": True, "remote_engine_id": "x", "remote_block_ids": [0],
              "remote_host": "127.0.0.1", "remote_port": 9, "remote_request_id": "r"}  # fmt: skip
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        resp = await post(session, h.url, kv_transfer_params=forged)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["sim_timing"]["kv_from_remote"] is False


async def test_lanes_killed_under_load_fail_no_request_before_its_first_byte(
    sim_lane: SimLaneFactory,
) -> None:
    """2P2D under streaming load; p0 and then d0 are SIGKILLed while requests are in
    flight. A request caught in p0's prefill, or whose decode lane can no longer pull
    p0's KV, is retried on p1 (and d1): no client sees an error before its first byte."""
    sims = one_p_two_d(sim_lane)
    sims["p1"] = sim_lane(lane_name="p1", time_scale=20, extra=PREFILL)
    async with run_router(table_of(sims)) as h, aiohttp.ClientSession() as session:
        results: list[tuple[int, bool, str]] = []
        stop = asyncio.Event()

        async def client(i: int) -> None:
            while not stop.is_set():
                body = {"model": MODEL, "prompt": f"{i} " + "word " * 600, "max_tokens": 12,
                        "stream": True}  # fmt: skip
                async with session.post(h.url + "/v1/completions", json=body) as resp:
                    data = await resp.read()
                    results.append((resp.status, bool(data), resp.headers.get("X-Qwend-Lane", "")))

        clients = [asyncio.create_task(client(i)) for i in range(6)]
        try:
            await until(lambda: h.router.stats_snapshot().lane("p0").requests >= 6)
            sims["p0"].proc.kill()
            await until(lambda: h.router.stats_snapshot().lane("p1").requests >= 12)
            sims["d0"].proc.kill()
            served = h.router.stats_snapshot().lane("d1").requests
            await until(lambda: h.router.stats_snapshot().lane("d1").requests >= served + 12)
        finally:
            stop.set()
            await asyncio.gather(*clients)
        failed = [r for r in results if r[0] != 200 or not r[1]]
        assert not failed, failed[:3]
        snap = h.router.stats_snapshot()
        assert snap.lane("p0").failures >= 1 and snap.lane("d0").failures >= 1
        assert snap.retries >= 2 and len(results) >= 12
        assert results[-1][2] == "p1>d1"


async def test_a_long_prefill_does_not_make_the_waiting_decode_lane_look_hung(
    sim_lane: SimLaneFactory,
) -> None:
    """The decode slot is claimed with the prefill slot, but nothing is sent to the decode
    lane until the prefill answers: a prefill longer than ``stall_timeout_s`` must not
    get the decode lane ejected as stalled."""
    sims = {
        "p0": sim_lane(lane_name="p0", time_scale=1, extra=PREFILL),
        "d0": sim_lane(lane_name="d0", time_scale=20, extra=STRICT_DECODE),
    }
    config = RouterConfig(stall_timeout_s=0.3, probe_timeout_s=1.0)
    async with run_router(table_of(sims), config) as h, aiohttp.ClientSession() as session:
        d0 = h.router.forwarding.slots.runtime("d0")
        closed: set[bool] = set()
        request = asyncio.create_task(post(session, h.url, prompt="word " * 3000))
        while not request.done():
            closed.add(d0.breaker.closed)
            await asyncio.sleep(0.01)
        resp = request.result()
        assert resp.status == 200 and resp.headers["X-Qwend-Lane"] == "p0>d0"
        assert closed == {True}, "d0 was ejected while its request was still prefilling"
        assert d0.held == 0 and d0.in_flight == 0 and d0.counters.requests == 1
