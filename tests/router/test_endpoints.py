"""Router side endpoints: /v1/models, /tokenize, /health, /metrics, the app contract."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web

from qwend.config.model import RouterConfig
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY, Router
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, run_router


async def test_models_lists_the_public_names_of_the_active_lanes() -> None:
    async with fake_lanes(FakeLane("a"), FakeLane("b")) as (a, b):
        table = LaneTable(
            (
                replace(routable("a", a.url, "throughput"), aliases=("qwen",), max_model_len=8192),
                replace(routable("b", b.url, "stable", accepting=False), max_model_len=4096),
                routable("dead", "http://127.0.0.1:1", "general", model="other"),
                replace(routable("standby", b.url, "stable", model="new"), active=False),
            )
        )
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            async with s.get(h.url + "/v1/models") as r:
                doc = await r.json()
            async with s.get(h.url + "/v1/models/qwen") as r:
                one = await r.json()
            async with s.get(h.url + "/v1/models/new") as r:
                missing = (r.status, await r.json())
    # Lanes that are not ready list their names too (a request may wait for them);
    # a standby lane's does not; a name served by two lanes is listed once, with the
    # smaller context length (a request may land on either).
    assert doc == {
        "object": "list",
        "data": [
            {"id": "m", "object": "model", "created": 0, "owned_by": "qwend",
             "max_model_len": 4096},
            {"id": "qwen", "object": "model", "created": 0, "owned_by": "qwend",
             "max_model_len": 8192},
            {"id": "other", "object": "model", "created": 0, "owned_by": "qwend"},
        ],
    }  # fmt: skip
    assert one["id"] == "qwen" and one["max_model_len"] == 8192
    assert missing[0] == 404
    error = missing[1]["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'m', 'qwen', 'other'" in error["message"]


async def test_tokenize_passthrough() -> None:
    async with fake_lanes(FakeLane("a")) as (a,):
        table = LaneTable((routable("a", a.url, "throughput"),))
        async with (
            run_router(table) as h,
            aiohttp.ClientSession() as s,
            s.post(h.url + "/tokenize", json={"prompt": "hi"}) as r,
        ):
            assert r.status == 200
            doc = await r.json()
    assert doc["count"] == 3 and doc["echo"] == {"prompt": "hi"}


async def test_tokenize_without_lanes_is_503() -> None:
    async with (
        run_router(LaneTable()) as h,
        aiohttp.ClientSession() as s,
        s.post(h.url + "/tokenize", json={"prompt": "hi"}) as r,
    ):
        assert r.status == 503 and "Retry-After" in r.headers


async def test_health_follows_lane_availability() -> None:
    async with fake_lanes(FakeLane("a")) as (a,):
        table = LaneTable((routable("a", a.url, "throughput"),))
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            async with s.get(h.url + "/health") as r:
                assert r.status == 200 and (await r.json())["lanes"] == {"a": True}
            table.replace((routable("a", a.url, "throughput", accepting=False),))
            async with s.get(h.url + "/health") as r:
                assert r.status == 503


async def test_metrics_reports_policy_counters_and_latency() -> None:
    async with fake_lanes(FakeLane("a", chunks=5)) as (a,):
        table = LaneTable((routable("a", a.url, "throughput"),))
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            for stream in (False, True):
                async with s.post(h.url + "/v1/chat/completions", json=chat(stream=stream)) as r:
                    await r.read()
            async with s.get(h.url + "/metrics") as r:
                assert r.status == 200
                text = await r.text()
    assert 'qwend_router_policy_info{policy="balanced_long_text"} 1.0' in text
    assert "qwend_router_requests_total 2.0" in text
    assert 'qwend_router_lane_requests_total{lane="a",role="throughput",variant="v3"} 2.0' in text
    assert (
        'qwend_router_lane_breaker_state{lane="a",role="throughput",state="closed",'
        'variant="v3"} 1.0' in text
    )
    # Latency as histograms (aggregatable), never as quantile-labelled gauges.
    assert "quantile=" not in text
    labels = 'cls="short_text",lane="a",role="throughput",variant="v3"'
    inf = 'cls="short_text",lane="a",le="+Inf",role="throughput",variant="v3"'
    assert f"qwend_router_e2e_seconds_bucket{{{inf}}} 2.0" in text
    assert f"qwend_router_e2e_seconds_count{{{labels}}} 2.0" in text
    assert f"qwend_router_ttft_seconds_count{{{labels}}} 1.0" in text  # the streamed one
    assert f"qwend_router_queue_wait_seconds_count{{{labels}}} 2.0" in text
    assert f"qwend_router_completion_tokens_total{{{labels}}}" in text
    # Two requests teach the lane model nothing about saturation: the whole limit.
    assert 'qwend_router_lane_limit{lane="a",role="throughput",variant="v3"} 8.0' in text
    assert (
        'qwend_router_lane_efficient_concurrency{lane="a",role="throughput",variant="v3"} 8.0'
        in text
    )
    assert 'qwend_router_lane_model_itl_seconds{lane="a"' in text


async def test_metrics_of_a_removed_lane_go_with_it() -> None:
    slow_a = FakeLane("a", chunks=6, chunk_gap_s=0.02)
    async with fake_lanes(slow_a, FakeLane("b", chunks=6, chunk_gap_s=0.02)) as (a, b):
        table = LaneTable((routable("a", a.url, "throughput"), routable("b", b.url, "stable")))
        async with run_router(table) as h, aiohttp.ClientSession() as s:

            async def one() -> int:
                doc = chat(max_tokens=64, stream=True)
                async with s.post(h.url + "/v1/chat/completions", json=doc) as r:
                    await r.read()
                    return r.status

            # Long text at once: balanced over both lanes.
            assert await asyncio.gather(*(one() for _ in range(6))) == [200] * 6
            async with s.get(h.url + "/metrics") as r:
                before = await r.text()
            table.replace((routable("b", b.url, "stable"),))  # a reload removed lane a
            async with s.get(h.url + "/metrics") as r:
                after = await r.text()
    assert 'qwend_router_e2e_seconds_count{cls="long_text",lane="a"' in before
    assert 'lane="a"' not in after
    kept = [line for line in before.splitlines() if 'lane="b"' in line and "_seconds_" in line]
    assert kept and all(line in after for line in kept)


async def test_snapshot_records_latency_and_learns() -> None:
    async with fake_lanes(FakeLane("a", chunks=6, chunk_gap_s=0.01)) as (a,):
        table = LaneTable((routable("a", a.url, "throughput"),))
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            body = chat(stream=True, stream_options={"include_usage": True})
            async with s.post(h.url + "/v1/chat/completions", json=body) as r:
                assert b'"usage"' in await r.read()
            snap = h.router.stats_snapshot()
    lane = snap.lane("a")
    assert lane.latency.ttft.count == 1 and lane.latency.itl.count == 1
    assert lane.latency.itl.p50 is not None and lane.latency.itl.p50 >= 0.005
    assert lane.latency.tokens_per_s > 0
    assert lane.perf.samples > 0
    short = next(c for c in snap.classes if c.name == "short_text")
    assert short.requests == 1 and short.latency.e2e.count == 1


async def test_app_contract(aiohttp_client: Callable[[web.Application], Awaitable[Any]]) -> None:
    table = LaneTable()
    app = make_router_app(RouterConfig(), table)
    router = app[ROUTER_KEY]
    assert isinstance(router, Router)
    client = await aiohttp_client(app)
    resp = await client.get("/health")
    assert resp.status == 503
    assert router.stats_snapshot().policy == "balanced_long_text"
