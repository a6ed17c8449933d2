"""A lane group behind the router, under streaming load: while the group restarts as a
unit after its follower is killed, the router keeps serving on the host's other lane and
no request fails before its first byte."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from qwend.config.model import LaneConfig, RouterConfig
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY
from qwend.supervisor.coordinator import GroupCoordinator
from qwend.supervisor.group import GroupState
from tests.support.groups import FakeLink, Host, make_hosts, pid, routed
from tests.support.lanescripts.factory import FAST_HEALTH, FAST_RESTART
from tests.support.polling import until
from tests.support.simlane import free_port, sim_command

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def throughput_lane(state_dir: Path) -> LaneConfig:
    port = free_port()
    return LaneConfig(
        name="small",
        role="throughput",
        variant="v3",
        npus=(1,),
        port=port,
        model="qwen3.5-9b",
        command=tuple(sim_command(port, lane_name="small", time_scale=50)),
        env={"QWEND_SIM_STATE_DIR": str(state_dir)},
        health=FAST_HEALTH,
        restart=FAST_RESTART,
    )


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    async for made in make_hosts(tmp_path, (throughput_lane(tmp_path / "sim-state"),)):
        yield made


async def one_stream(client: TestClient[Any, Any], outcomes: Counter[str]) -> None:
    body = {
        "model": "qwen3.5-9b",
        "messages": [{"role": "user", "content": "count to forty"}],
        "max_tokens": 40,
        "stream": True,
    }
    async with client.post("/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            outcomes[f"before first byte: HTTP {resp.status}"] += 1
            return
        try:
            async for _ in resp.content:
                pass
        except Exception:  # cut mid-stream: after the first byte, allowed here
            outcomes["cut after first byte"] += 1
            return
    outcomes["ok"] += 1


async def test_the_router_serves_elsewhere_while_the_group_restarts(
    hosts: dict[str, Host], aiohttp_client: ClientFactory
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    config = replace(RouterConfig(), long_text_min_tokens=8)
    app = make_router_app(config, lead.table)
    client = await aiohttp_client(app)

    def served_by(lane: str) -> int:
        found = [s for s in app[ROUTER_KEY].stats_snapshot().lanes if s.name == lane]
        return found[0].requests if found else 0

    await lead.sup.start()
    await lead.sup.wait_ready("small", 30)
    coord = GroupCoordinator(lead.sup, lead.sup.config.lanes[0], FakeLink(hosts), poll_s=0.2)
    await coord.start()
    running = asyncio.create_task(coord.run())
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            await one_stream(client, outcomes)

    workers = [asyncio.create_task(load()) for _ in range(4)]
    try:
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
        await until(lambda: served_by("big") >= 5, 30, "load on the group's leader")
        old = pid(follow)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await until(lambda: not routed(lead), 15, "the leader out of routing")
        served_before = outcomes["ok"]
        await until(lambda: coord.machine.restarts == 1, 30, "a group restart")
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group back")
        back = outcomes["ok"]
        assert back > served_before, "nothing was served while the group restarted"
        assert routed(lead)
        await until(lambda: outcomes["ok"] >= back + 20, 30, "load after the restart")
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await coord.stop("test over")
    failed_early = {k: n for k, n in outcomes.items() if k.startswith("before first byte")}
    assert failed_early == {}, outcomes
    assert pid(lead) is None and pid(follow) is None
