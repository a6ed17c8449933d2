"""Lane identity with real processes: a squatter on a loading lane's port is never routed."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from qwend.config.model import Config, DaemonConfig
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import LaneEvent, Supervisor
from tests.support.lanescripts.factory import FAST_HEALTH, make_lane, squatter_argv, wait_json
from tests.support.polling import SLACK_S, until

S = LaneState


@pytest.fixture
def squatters() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(timeout=SLACK_S)


@pytest.fixture
async def loading_lane_sup(tmp_path: Path) -> AsyncIterator[Supervisor]:
    # The lane binds its port only after a long "model load", like vLLM does.
    lane = make_lane(
        "a",
        extra=["--startup-delay", "60"],
        health=replace(FAST_HEALTH, startup_timeout_s=120.0),
    )
    config = Config(daemon=DaemonConfig(log_dir=tmp_path / "logs"), lanes=(lane,))
    sup = Supervisor(config, LaneTable())
    yield sup
    await sup.shutdown(drain_timeout=0)


async def test_a_squatter_answering_health_during_the_load_is_never_routed(
    loading_lane_sup: Supervisor, squatters: list[subprocess.Popen[bytes]]
) -> None:
    sup = loading_lane_sup
    lane = sup.config.lane("a")
    events = sup.subscribe()
    await sup.start()
    await until(lambda: sup.snapshot("a").pid is not None, what="the lane process")
    squatter = subprocess.Popen(squatter_argv(lane.port, lane.model), start_new_session=True)
    squatters.append(squatter)
    await wait_json(f"{lane.base_url}/squatter")
    seen: list[LaneEvent] = []
    deadline = time.monotonic() + 3 * SLACK_S
    while not seen or seen[-1].new not in (S.BACKOFF, S.READY):
        remaining = deadline - time.monotonic()
        seen.append(await asyncio.wait_for(anext(events), max(remaining, 0.01)))
    assert seen[-1].new is S.BACKOFF, f"the squatter was taken for the lane: {seen}"
    reason = seen[-1].reason or ""
    assert f"port {lane.port} is answered by PID {squatter.pid} (python" in reason
    assert "not by lane a's processes" in reason
    routable = sup._table.get("a")
    assert routable is not None and not routable.accepting
