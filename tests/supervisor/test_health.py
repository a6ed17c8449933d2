"""Health probes against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from aiohttp import web

from qwend.config.model import HealthConfig, LaneConfig
from qwend.supervisor.health import (
    Liveness,
    NotReady,
    check_models,
    served_model_warning,
    served_models,
    wait_ready,
)
from qwend.supervisor.identity import check_listeners
from qwend.supervisor.listener import Listeners, Verdict
from tests.support.polling import SLACK_S, until


@dataclass
class FakeLane:
    """Behaviour switches of a fake lane server."""

    health_status: int = 200
    health_hang: bool = False
    models: list[str] = field(default_factory=lambda: ["m"])
    completions: int = 0
    reject: int | None = None
    """Status of completion answers (None: 200)."""
    health_requests: int = 0
    models_requests: int = 0


def lane_for(port: int, **health: object) -> LaneConfig:
    cfg = HealthConfig(startup_timeout_s=3.0, interval_s=0.05, timeout_s=0.3, failure_threshold=2)
    return LaneConfig(
        name="h",
        role="stable",
        variant="v",
        npus=(0,),
        port=port,
        model="m",
        command=("x",),
        health=replace(cfg, **health),  # type: ignore[arg-type]
    )


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeLane, int]]:
    state = FakeLane()

    async def health(_: web.Request) -> web.Response:
        state.health_requests += 1
        if state.health_hang:
            await asyncio.sleep(3600)
        return web.json_response({}, status=state.health_status)

    async def models(_: web.Request) -> web.Response:
        state.models_requests += 1
        return web.json_response({"data": [{"id": m} for m in state.models]})

    async def completions(_: web.Request) -> web.Response:
        state.completions += 1
        if state.reject is not None:
            return web.json_response({"detail": "unknown model"}, status=state.reject)
        return web.json_response({"choices": [{"text": "x"}]})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield state, port
    await runner.cleanup()


async def test_ready_needs_health_and_a_listed_model(fake: tuple[FakeLane, int]) -> None:
    state, port = fake
    lane = lane_for(port)
    state.models = []
    async with aiohttp.ClientSession() as session:
        assert await check_models(session, lane) == "/v1/models lists no model yet"
        asked = state.models_requests
        task = asyncio.create_task(wait_ready(session, lane, asyncio.Event()))
        await until(lambda: state.models_requests >= asked + 2, what="two looks at the models")
        assert not task.done()
        state.models = ["m"]
        await asyncio.wait_for(task, 2)


async def test_ready_times_out_with_the_last_problem(fake: tuple[FakeLane, int]) -> None:
    state, port = fake
    state.health_status = 503
    lane = lane_for(port, startup_timeout_s=0.5)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(NotReady, match=r"startup_timeout_s=0.5s.*HTTP 503"):
            await wait_ready(session, lane, asyncio.Event())


async def test_process_exit_ends_the_wait_at_once(fake: tuple[FakeLane, int]) -> None:
    state, port = fake
    state.health_status = 503
    lane = lane_for(port, startup_timeout_s=60.0)
    exited = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(wait_ready(session, lane, exited))
        await until(lambda: state.health_requests >= 1, what="the wait to be polling")
        exited.set()
        # "At once": within a loaded machine's slack, nowhere near startup_timeout_s.
        with pytest.raises(NotReady, match="process exited during start"):
            await asyncio.wait_for(task, SLACK_S)


async def test_hanging_health_is_unhealthy_after_threshold(fake: tuple[FakeLane, int]) -> None:
    state, port = fake
    lane = lane_for(port)
    async with aiohttp.ClientSession() as session:
        live = Liveness(lane, session, last_traffic_ok=lambda: None)
        assert await live.probe_once() is None
        state.health_hang = True
        reason = await asyncio.wait_for(live.run(), 5)
        assert "liveness failed 2 times in a row" in reason
        assert "did not answer within 0.3s" in reason


async def test_one_failure_below_threshold_is_forgiven(fake: tuple[FakeLane, int]) -> None:
    _state, port = fake
    lane = lane_for(port, failure_threshold=3)
    async with aiohttp.ClientSession() as session:
        live = Liveness(lane, session, last_traffic_ok=lambda: None)
        assert not live.record("boom")
        assert not live.record("boom")
        assert not live.record(None)
        assert live.failures == 0
        assert not live.record("boom")
        assert not live.record("boom")
        assert live.record("boom")


async def test_inference_probe_is_skipped_while_traffic_succeeds(
    fake: tuple[FakeLane, int],
) -> None:
    state, port = fake
    lane = lane_for(port, inference_probe=True, inference_probe_idle_s=60.0)
    now = [1000.0]
    last: list[float | None] = [None]
    async with aiohttp.ClientSession() as session:
        live = Liveness(lane, session, last_traffic_ok=lambda: last[0], clock=lambda: now[0])
        assert await live.probe_once() is None
        assert state.completions == 1
        last[0] = 990.0
        assert await live.probe_once() is None
        assert state.completions == 1  # skipped: traffic 10 s ago
        now[0] = 1100.0
        assert await live.probe_once() is None
        assert state.completions == 2


async def test_failures_do_not_count_while_real_traffic_succeeds() -> None:
    lane = lane_for(1)
    now = [1000.0]
    async with aiohttp.ClientSession() as session:
        live = Liveness(lane, session, last_traffic_ok=lambda: 999.99, clock=lambda: now[0])
        for _ in range(5):
            assert not live.record("slow")
        now[0] = 1001.0
        assert not live.record("slow")
        assert live.record("slow")


async def test_an_unlisted_served_model_warns_only_when_the_backend_rejects_it(
    fake: tuple[FakeLane, int],
) -> None:
    state, port = fake
    lane = lane_for(port)
    state.models = ["other"]
    async with aiohttp.ClientSession() as session:
        assert await served_models(session, lane) == ["other"]
        # accepts any name (llama.cpp): no false alarm
        assert await served_model_warning(session, lane) is None
        assert state.completions == 1
        state.reject = 404
        warning = await served_model_warning(session, lane)
        assert warning is not None
        assert "rejects the model name 'm' (HTTP 404); it lists other" in warning
        assert "lane.served_model" in warning
        state.models = ["other", "m"]  # listed: nothing to try
        assert await served_model_warning(session, lane) is None
        assert state.completions == 2


UNUSED_PGID = 2**22 + 7
"""Above pid_max's default: no process group has this id."""


def listeners_of(port: int, pgid: int) -> Callable[[], Awaitable[Listeners]]:
    async def check() -> Listeners:
        return await asyncio.to_thread(check_listeners, "h", port, pgid)

    return check


async def test_ready_when_the_listener_is_in_the_lane_group(fake: tuple[FakeLane, int]) -> None:
    _, port = fake  # served by this test process: its group is the "lane's"
    async with aiohttp.ClientSession() as session:
        lane = lane_for(port)
        await wait_ready(session, lane, asyncio.Event(), listeners_of(port, os.getpgid(0)))


async def test_a_stranger_on_the_port_fails_readiness_at_once(fake: tuple[FakeLane, int]) -> None:
    _, port = fake
    lane = lane_for(port, startup_timeout_s=60.0)
    async with aiohttp.ClientSession() as session:
        wait = wait_ready(session, lane, asyncio.Event(), listeners_of(port, UNUSED_PGID))
        with pytest.raises(NotReady) as caught:
            await asyncio.wait_for(wait, SLACK_S)
    assert f"port {port} is answered by PID {os.getpid()} (" in str(caught.value)
    assert f"not by lane h's processes (group {UNUSED_PGID})" in str(caught.value)


async def test_a_stranger_makes_a_live_lane_unhealthy_without_a_threshold(
    fake: tuple[FakeLane, int],
) -> None:
    _, port = fake
    lane = lane_for(port, failure_threshold=1000)
    async with aiohttp.ClientSession() as session:
        live = Liveness(
            lane, session, last_traffic_ok=lambda: None, listeners=listeners_of(port, UNUSED_PGID)
        )
        reason = await asyncio.wait_for(live.run(), SLACK_S)
    assert f"answered by PID {os.getpid()}" in reason


async def test_nobody_on_the_port_is_not_ready_yet() -> None:
    async def nobody() -> Listeners:
        return Listeners(Verdict.NONE, "nothing listens on port 1 yet")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", health)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    lane = lane_for(runner.addresses[0][1], startup_timeout_s=0.5)
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(NotReady, match="last probe: nothing listens on port 1 yet"):
                await wait_ready(session, lane, asyncio.Event(), nobody)
    finally:
        await runner.cleanup()
