"""Degraded lanes: failure-rate ejection, router probes, retries of 5xx, idle streams,
hung lanes detected from live traffic, breaker reset when a lane comes back."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from qwend.config.model import RouterConfig
from qwend.router.router import Router
from qwend.routing.lanetable import LaneTable
from qwend.routing.outcomes import RETRY_FLOOR
from tests.support.polling import SLACK_S
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, run_router, until

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=SLACK_S)


def opened(router: Router, lane: str) -> int:
    """How many times ``lane``'s breaker opened."""
    return router.forwarding.slots.runtime(lane).breaker.view(time.monotonic()).opened


def breaker_state(router: Router, lane: str) -> str:
    return router.stats_snapshot().lane(lane).breaker


async def ask(
    s: aiohttp.ClientSession, url: str, body: dict[str, object]
) -> tuple[int, str, bytes]:
    """Status, serving lane and body of one chat completion."""
    async with s.post(url + "/v1/chat/completions", json=body) as r:
        return r.status, r.headers.get("X-Qwend-Lane", ""), await r.read()


def two_lanes(fast: FakeLane, stable: FakeLane) -> LaneTable:
    return LaneTable(
        (routable("fast", fast.url, "throughput"), routable("stable", stable.url, "stable"))
    )


async def test_half_failing_lane_costs_no_client_request_and_is_ejected() -> None:
    """A lane answering 500 to every other request, next to a healthy sibling: every
    client request succeeds (500 is retried before the first byte) and the lane is
    ejected by its failure rate instead of drawing most of the traffic."""
    fast, stable = FakeLane("fast", fail_ratio=0.5, fail_status=500), FakeLane("stable")
    async with (
        fake_lanes(fast, stable),
        run_router(two_lanes(fast, stable)) as h,
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s,
    ):
        bodies = [chat(max_tokens=8 if i % 3 else 64, stream=bool(i % 2)) for i in range(200)]
        results: list[tuple[int, str, bytes]] = []
        for at in range(0, len(bodies), 8):
            batch = bodies[at : at + 8]
            results += await asyncio.gather(*(ask(s, h.url, b) for b in batch))
        failed = [(st, lane) for st, lane, body in results if st != 200 or b"error" in body]
        assert not failed, f"{len(failed)} of {len(results)} failed, e.g. {failed[:3]}"
        assert opened(h.router, "fast") >= 1
        assert fast.requests < len(bodies) // 2  # it does not draw the traffic any more
        assert h.router.stats_snapshot().retries >= 1


async def test_stalled_stream_ends_with_an_error_event_within_the_idle_timeout() -> None:
    fast = FakeLane("fast", chunks=4, gate=asyncio.Event())  # the gate never opens
    async with fake_lanes(fast):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        config = RouterConfig(stream_idle_timeout_s=0.5)
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            began = time.monotonic()
            status, _, body = await ask(s, h.url, chat(stream=True))
            elapsed = time.monotonic() - began
            await until(lambda: fast.aborts == 1, what="the lane's request aborted")
            snap = h.router.stats_snapshot()
    assert status == 200
    events = [e for e in body.split(b"\n\n") if e]
    assert b"fast0" in events[0]
    error = json.loads(events[-1].removeprefix(b"data: "))
    assert "stream_idle_timeout_s" in error["error"]["message"]
    assert 0.5 <= elapsed < 0.5 + SLACK_S
    assert snap.lane("fast").failures == 1  # counts against the lane
    assert snap.lane("fast").mid_stream_errors == 1 and snap.in_flight == 0


async def test_hung_lane_is_ejected_from_live_traffic_and_its_requests_fail_over() -> None:
    """A lane that accepts connections and never answers (SIGSTOP-like) stops receiving
    requests after ``stall_timeout_s``; once the router's probe failed, the request
    stuck on it goes to the sibling (nothing had reached the client)."""
    fast, stable = FakeLane("fast", hang=True), FakeLane("stable")
    async with fake_lanes(fast, stable):
        config = RouterConfig(stall_timeout_s=0.5, probe_timeout_s=0.5)
        async with (
            run_router(two_lanes(fast, stable), config) as h,
            aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s,
        ):
            stuck = asyncio.create_task(ask(s, h.url, chat()))
            await until(lambda: fast.requests == 1, what="a request on the hung lane")
            began = time.monotonic()
            await until(lambda: breaker_state(h.router, "fast") != "closed", what="ejection")
            assert time.monotonic() - began < 0.5 + SLACK_S
            for _ in range(10):
                status, lane, _ = await ask(s, h.url, chat())
                assert (status, lane) == (200, "stable")
            status, lane, _ = await stuck
            assert (status, lane) == (200, "stable")
            assert fast.requests == 1  # failed over after the liveness probe (GET /v1/models)


async def test_the_probe_is_the_routers_own_and_a_hung_probe_holds_no_client() -> None:
    config = RouterConfig(
        breaker_failure_threshold=1, breaker_cooldown_s=0.2, probe_timeout_s=0.5, retry_budget=0
    )
    fast, stable = FakeLane("fast", status=502), FakeLane("stable")
    async with (
        fake_lanes(fast, stable),
        run_router(two_lanes(fast, stable), config) as h,
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s,
    ):
        assert (await ask(s, h.url, chat()))[:2] == (502, "fast")
        fast.status, fast.hang = 200, True
        await until(lambda: fast.probes >= 1, what="the router's probe")
        results = await asyncio.gather(*(ask(s, h.url, chat()) for _ in range(6)))
        assert {(status, lane) for status, lane, _ in results} == {(200, "stable")}
        assert fast.requests == 1  # no client request was used as the probe
        fast.hang = False
        await until(lambda: breaker_state(h.router, "fast") == "closed", what="recovery")
        assert (await ask(s, h.url, chat()))[:2] == (200, "fast")


async def test_breaker_resets_when_the_lane_comes_back_or_changes() -> None:
    config = RouterConfig(breaker_failure_threshold=1, breaker_cooldown_s=3600, retry_budget=0)
    fast, stable = FakeLane("fast", status=500), FakeLane("stable")
    async with fake_lanes(fast, stable):
        table = two_lanes(fast, stable)
        async with run_router(table, config) as h, aiohttp.ClientSession() as s:
            assert (await ask(s, h.url, chat()))[:2] == (500, "fast")
            assert breaker_state(h.router, "fast") == "open"
            fast.status = 200
            lanes = table.snapshot()
            table.replace((routable("fast", fast.url, "throughput", accepting=False), lanes[1]))
            assert breaker_state(h.router, "fast") == "open"
            table.replace(lanes)  # restarted: ready again
            assert breaker_state(h.router, "fast") == "closed"
            fast.status = 500
            assert (await ask(s, h.url, chat()))[:2] == (500, "fast")
            moved = routable("fast", stable.url, "throughput")  # another process now
            table.replace((moved, lanes[1]))
            assert breaker_state(h.router, "fast") == "closed"


async def test_retry_budget_bounds_retries_per_window() -> None:
    """With ``retry_budget_ratio = 0`` only the floor of 10 retries per window goes out:
    a lane failing everything cannot double the load on its sibling."""
    config = RouterConfig(
        retry_budget_ratio=0.0, breaker_failure_threshold=1000, breaker_min_requests=1000
    )
    fast, stable = FakeLane("fast", status=500), FakeLane("stable")
    async with (
        fake_lanes(fast, stable),
        run_router(two_lanes(fast, stable), config) as h,
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s,
    ):
        results = [(await ask(s, h.url, chat()))[:2] for _ in range(30)]
        snap = h.router.stats_snapshot()
    assert results == [(200, "stable")] * RETRY_FLOOR + [(500, "fast")] * 20
    assert snap.retries == RETRY_FLOOR and snap.retries_refused == 20


async def test_a_busy_lane_is_not_a_hung_one() -> None:
    """A lane in a long prefill sends nothing for a while but answers its model list: it is
    probed, routed again at once, and its request is not taken away from it."""
    fast, stable = FakeLane("fast", delay_s=1.5), FakeLane("stable")
    config = RouterConfig(stall_timeout_s=0.3, probe_timeout_s=1.0)
    async with (
        fake_lanes(fast, stable),
        run_router(two_lanes(fast, stable), config) as h,
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s,
    ):
        status, lane, _ = await ask(s, h.url, chat())
        assert (status, lane) == (200, "fast")
        assert opened(h.router, "fast") >= 1  # it was suspected ...
        # ... and cleared by its probe (on a loaded machine the probe's answer may land
        # just after the request's own answer)
        await until(lambda: breaker_state(h.router, "fast") == "closed")
        assert stable.requests == 0


async def test_a_degraded_lane_alone_in_its_role_still_serves() -> None:
    """Ejecting the only lane that can serve a request would turn its 50 % failures into
    100 % 503s: a lane ejected for its failure rate is the last resort instead."""
    only = FakeLane("only", fail_ratio=0.5, fail_status=500)
    async with (
        fake_lanes(only),
        run_router(LaneTable((routable("only", only.url, "throughput"),))) as h,
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s,
    ):
        statuses = [(await ask(s, h.url, chat()))[0] for _ in range(40)]
        assert opened(h.router, "only") >= 1  # ejected ...
    assert 503 not in statuses  # ... yet still used, as nothing else can serve
    assert statuses.count(200) >= 15
