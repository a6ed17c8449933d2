"""A lane that runs on a lane group (``runs_on``, an engine on a Ray cluster), across two
supervisors in one process: started once the group is ready, stopped before its members,
started again after the group's restart, restarted alone when only it dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from qwend.config.model import MonitorConfig
from qwend.errors import LaneError
from qwend.npu.monitor import NpuMonitor
from qwend.supervisor.coordinator import GroupCoordinator
from qwend.supervisor.group import GroupState
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import LaneEvent
from tests.npu.test_monitor import FakeNpuSmi, table_with
from tests.support.groups import FakeLink, Host, make_ray_hosts
from tests.support.lanescripts.factory import FAST_RESTART
from tests.support.polling import until

S = LaneState


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    async for made in make_ray_hosts(tmp_path):
        yield made


def engine_pid(host: Host) -> int | None:
    return host.sup.snapshot("engine").pid


def engine_routed(host: Host) -> bool:
    lane = host.table.get("engine")
    return lane is not None and lane.accepting


async def started(hosts: dict[str, Host]) -> tuple[GroupCoordinator, asyncio.Task[None]]:
    lead = hosts["node0"]
    await lead.sup.start()
    await hosts["node1"].sup.start()
    coord = GroupCoordinator(lead.sup, lead.sup.config.lane("ray"), FakeLink(hosts), poll_s=0.2)
    await coord.start()
    return coord, asyncio.create_task(coord.run())


async def finish(coord: GroupCoordinator, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await coord.stop("test over")


async def test_the_engine_waits_for_its_group_and_is_routed_once_it_is_ready(
    hosts: dict[str, Host],
) -> None:
    lead = hosts["node0"]
    await lead.sup.start()
    assert lead.sup.lane_state("engine") is S.STOPPED, "nothing to run on yet"
    with pytest.raises(LaneError, match="runs on lane group ray, which is not ready"):
        await lead.sup.start_lane("engine")
    coord, task = await started(hosts)
    try:
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
        assert engine_routed(lead)
        ray = lead.table.get("ray")
        assert ray is None or not ray.accepting, "a headless member is never routed"
        snap = lead.sup.snapshot("engine")
        assert snap.runs_on == "ray" and snap.npus == ()
    finally:
        await finish(coord, task)
    assert lead.sup.lane_state("engine") is S.STOPPED, "the group's stop stops the engine"
    assert not engine_routed(lead)


async def test_a_lost_member_stops_the_engine_first_and_the_engine_comes_back_with_the_group(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    coord, task = await started(hosts)
    order: list[str] = []
    try:
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
        old_engine = engine_pid(lead)
        old_head = lead.sup.snapshot("ray").pid
        with lead.sup.subscribe() as changes:

            async def record() -> None:
                async for event in changes:
                    assert isinstance(event, LaneEvent)
                    if event.new is S.STOPPED:
                        order.append(event.lane)

            recorder = asyncio.create_task(record())
            worker = follow.sup.snapshot("ray").pid
            assert worker is not None
            os.kill(worker, signal.SIGKILL)
            await until(lambda: coord.machine.restarts == 1, 30, "a group restart")
            await until(lambda: coord.machine.state is GroupState.READY, 30, "the group back")
            await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine back")
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
        assert order[:2] == ["engine", "ray"], "the engine stops before the head node"
        assert engine_pid(lead) not in (None, old_engine)
        assert lead.sup.snapshot("ray").pid not in (None, old_head), "restarted as a unit"
        assert engine_routed(lead)
    finally:
        await finish(coord, task)


async def test_an_engine_that_dies_alone_is_restarted_while_the_group_stays_up(
    hosts: dict[str, Host],
) -> None:
    lead = hosts["node0"]
    coord, task = await started(hosts)
    try:
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
        head = lead.sup.snapshot("ray").pid
        old = engine_pid(lead)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await until(lambda: engine_pid(lead) not in (None, old), 30, "the engine restarted")
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
        assert coord.machine.restarts == 0 and coord.machine.state is GroupState.READY
        assert lead.sup.snapshot("ray").pid == head, "the cluster stayed up"
        assert lead.sup.snapshot("engine").restarts == 1
    finally:
        await finish(coord, task)


async def test_an_operator_stop_of_the_group_stops_the_engine_before_any_member(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    coord, task = await started(hosts)
    stopped_at: dict[str, float] = {}
    try:
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with lead.sup.subscribe() as changes:

            async def record() -> None:
                async for event in changes:
                    if event.new is S.STOPPED:
                        stopped_at.setdefault(event.lane, event.at)

            recorder = asyncio.create_task(record())
            await coord.stop("stopped by request")  # what an operator's stop of "ray" runs
            await asyncio.sleep(0)
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
    for host in (lead, follow):
        assert host.sup.lane_state("ray") is S.STOPPED
    assert lead.sup.lane_state("engine") is S.STOPPED
    assert stopped_at["engine"] <= stopped_at["ray"]


@pytest.fixture
async def sim_ray_hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    async for made in make_ray_hosts(tmp_path, sim_ray=True):
        yield made


async def test_on_the_sims_ray_cluster_the_engine_serves_only_with_every_node(
    sim_ray_hosts: dict[str, Host],
) -> None:
    lead, follow = sim_ray_hosts["node0"], sim_ray_hosts["node1"]
    coord, task = await started(sim_ray_hosts)
    try:
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
        old = engine_pid(lead)
        worker = follow.sup.snapshot("ray").pid
        assert worker is not None
        os.kill(worker, signal.SIGKILL)
        await until(lambda: not engine_routed(lead), 15, "the engine out of routing")
        await until(lambda: coord.machine.restarts == 1, 30, "a cluster restart")
        await until(
            lambda: lead.sup.lane_state("engine") is S.READY and engine_pid(lead) != old,
            30,
            "the engine back on the new cluster",
        )
        assert coord.machine.state is GroupState.READY
        assert engine_routed(lead)
    finally:
        await finish(coord, task)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[dict[str, Host], FakeNpuSmi]]:
    """The Ray hosts with the leader host's NPU check on a fake npu-smi (the engine's
    failed starts are retried without a crash loop)."""
    (tmp_path / "npu-smi").mkdir()
    fake = FakeNpuSmi(tmp_path / "npu-smi")
    fake.table(table_with([]))
    monitor = NpuMonitor(
        MonitorConfig(npu_smi=str(fake.script), interval_s=0.1, release_wait_s=0.5), dict, dict
    )
    patient = replace(FAST_RESTART, crash_loop_limit=1000)
    async for made in make_ray_hosts(tmp_path, pre_start=monitor.pre_start, restart=patient):
        yield made, fake


async def test_a_restarted_engine_waits_for_its_predecessors_workers_to_release_the_npus(
    watched: tuple[dict[str, Host], FakeNpuSmi],
) -> None:
    # The engine holds no NPU itself, but its workers run on the group member's NPUs
    # here (NPU 1): a dead engine's worker still holding HBM there must let go first.
    hosts, fake = watched
    lead = hosts["node0"]
    coord, task = await started(hosts)
    old_worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine ready")
        fake.table(table_with([(1, 0, old_worker.pid, "ray::RayWorkerWrapper", 30000)]))
        old = engine_pid(lead)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await until(
            lambda: "NPUs 1 still in use" in (lead.sup.snapshot("engine").reason or ""),
            30,
            "the engine held back by the old worker's HBM",
        )
        assert engine_pid(lead) is None
        assert coord.machine.state is GroupState.READY, "the cluster is not restarted"
        fake.table(table_with([]))  # the old worker let go
        await until(lambda: lead.sup.lane_state("engine") is S.READY, 30, "the engine back")
    finally:
        old_worker.kill()
        old_worker.wait(timeout=10)
        await finish(coord, task)
