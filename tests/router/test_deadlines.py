"""First-byte and overall deadlines, enforced by the router's watchdog."""

from __future__ import annotations

import json

import aiohttp

from qwend.config.model import RouterConfig
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, run_router, until


async def post(url: str, body: object) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as r:
        return r.status, dict(r.headers), await r.read()


async def test_first_byte_timeout_retries_on_another_lane() -> None:
    config = RouterConfig(first_byte_timeout_s=0.2)
    async with fake_lanes(FakeLane("fast", hang=True), FakeLane("stable")) as (fast, st):
        table = LaneTable(
            (routable("fast", fast.url, "throughput"), routable("stable", st.url, "stable"))
        )
        async with run_router(table, config) as h:
            status, headers, _ = await post(h.url, chat())
            assert status == 200 and headers["X-Qwend-Lane"] == "stable"
            assert headers["X-Qwend-Attempts"] == "2"
            await until(lambda: fast.aborts == 1)  # the hung attempt was closed upstream
            snap = h.router.stats_snapshot()
            assert snap.lane("fast").failures == 1 and snap.client_disconnects == 0


async def test_first_byte_timeout_without_other_lane_is_504() -> None:
    config = RouterConfig(first_byte_timeout_s=0.2)
    async with fake_lanes(FakeLane("fast", hang=True)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h:
            status, _, body = await post(h.url, chat())
            assert status == 504
            assert json.loads(body)["error"]["code"] == "lane_timeout"
            await until(lambda: h.router.in_flight("fast") == 0)


async def test_overall_deadline_ends_a_stream_with_an_error_event() -> None:
    config = RouterConfig(request_timeout_s=0.5)
    lane = FakeLane("fast", chunks=100, chunk_gap_s=0.05)
    async with fake_lanes(lane) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table, config) as h:
            status, _, body = await post(h.url, chat(stream=True))
            assert status == 200
            last = [e for e in body.split(b"\n\n") if e][-1]
            assert b"deadline" in last and b'"error"' in last
            assert 1 < body.count(b"fast") < 100
            await until(lambda: fast.aborts == 1)
            snap = h.router.stats_snapshot()
            assert snap.mid_stream_errors == 1 and snap.in_flight == 0
