"""Degraded real lanes: ``qwend-sim`` processes with injected faults behind the router."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import aiohttp
import pytest

from qwend.config.model import RouterConfig
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.polling import SLACK_S
from tests.support.router_fakes import run_router, until
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import SimLaneFactory, SimLaneProcess

TIMEOUT = aiohttp.ClientTimeout(total=60)
DEFAULT_STALL_S = 5.0
"""``stall_timeout_s``'s documented default (a literal: the test must run against older code)."""


def lane_of(name: str, sim: SimLaneProcess, role: str) -> RoutableLane:
    return RoutableLane(name, role, "v3", sim.base_url, True, False, True, True, MODEL)


def body(i: int) -> dict[str, object]:
    """A mix of short and long, streamed and whole chat completions."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"request {i}"}],
        "max_tokens": 8 if i % 3 else 40,
        "stream": bool(i % 2),
    }


async def ask(s: aiohttp.ClientSession, url: str, doc: dict[str, object]) -> tuple[int, str, bytes]:
    async with s.post(url + "/v1/chat/completions", json=doc) as r:
        return r.status, r.headers.get("X-Qwend-Lane", ""), await r.read()


async def test_half_failing_sim_lane_fails_no_client_request(sim_lane: SimLaneFactory) -> None:
    bad = sim_lane(lane_name="bad", extra=("--error-rate", "0.5", "--error-status", "500"))
    good = sim_lane(lane_name="good")
    table = LaneTable((lane_of("bad", bad, "throughput"), lane_of("good", good, "stable")))
    async with run_router(table) as h, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        results: list[tuple[int, str, bytes]] = []
        for at in range(0, 120, 6):
            results += await asyncio.gather(*(ask(s, h.url, body(i)) for i in range(at, at + 6)))
        snap = h.router.stats_snapshot()
    failed = [(status, lane) for status, lane, data in results if status != 200]
    failed += [(status, lane) for status, lane, data in results if b'"error"' in data]
    assert not failed, f"{len(failed)} of {len(results)} failed, e.g. {failed[:3]}"
    assert snap.lane("bad").requests < 60  # ejected: it does not draw the traffic
    assert snap.retries >= 1


@pytest.mark.slow  # default timeouts: ejection after 5 s, fail-over after the 10 s probe
async def test_sigstopped_sim_lane_stops_receiving_traffic(sim_lane: SimLaneFactory) -> None:
    """A SIGSTOPped lane still accepts TCP connections; the router sees its in-flight
    requests make no progress and takes it out of routing within ``stall_timeout_s``
    (default 5 s), long before the supervisor's health probe would."""
    stopped = sim_lane(lane_name="stopped")
    good = sim_lane(lane_name="good")
    table = LaneTable((lane_of("stopped", stopped, "throughput"), lane_of("good", good, "stable")))
    async with run_router(table) as h, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        assert (await ask(s, h.url, body(1)))[:2] == (200, "stopped")
        os.kill(stopped.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            load = [asyncio.create_task(ask(s, h.url, body(i))) for i in range(4)]
            await until(
                lambda: h.router.stats_snapshot().lane("stopped").breaker != "closed",
                timeout=DEFAULT_STALL_S + SLACK_S,
                what="the stopped lane ejected",
            )
            ejected_after = time.monotonic() - began
            sent = h.router.stats_snapshot().lane("stopped").requests
            for i in range(10):
                status, lane, _ = await ask(s, h.url, body(i))
                assert (status, lane) == (200, "good")
            assert h.router.stats_snapshot().lane("stopped").requests == sent
            # The requests stuck on it fail over once the router's probe failed.
            statuses = [status for status, _, _ in await asyncio.gather(*load)]
            assert statuses == [200] * len(load)
        finally:
            os.kill(stopped.pid, signal.SIGCONT)
    assert ejected_after < DEFAULT_STALL_S + SLACK_S


async def test_stream_stalled_mid_way_ends_with_an_error_event(sim_lane: SimLaneFactory) -> None:
    stalling = sim_lane(lane_name="stalling", extra=("--stall-after-tokens", "3"))
    table = LaneTable((lane_of("stalling", stalling, "throughput"),))
    config = RouterConfig(stream_idle_timeout_s=1.0)
    async with run_router(table, config) as h, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        began = time.monotonic()
        status, _, data = await ask(s, h.url, {**body(1), "max_tokens": 20})
        elapsed = time.monotonic() - began
        snap = h.router.stats_snapshot()
    assert status == 200
    events = [e.removeprefix(b"data: ") for e in data.split(b"\n\n") if e]
    assert len(events) >= 2
    error = json.loads(events[-1])["error"]
    assert "stream_idle_timeout_s" in error["message"]
    assert elapsed < 1.0 + SLACK_S
    assert snap.lane("stalling").failures == 1
