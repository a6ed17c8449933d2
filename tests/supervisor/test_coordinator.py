"""Lane groups across two supervisors (two "hosts" in one process) with real qwend-sim
data parallel members: a leader lane and a ``--headless`` follower lane."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qwend.config.model import Config, DaemonConfig, GroupConfig, LaneConfig, StartOrder
from qwend.errors import LaneError
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.coordinator import FollowerWatch, GroupCoordinator
from qwend.supervisor.group import GroupState, MemberStatus
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import Supervisor
from tests.support.lanescripts.factory import FAST_HEALTH, FAST_RESTART
from tests.support.polling import until
from tests.support.simlane import free_port, sim_command

HOSTS = ("node0", "node1")
S = LaneState


@dataclass
class Host:
    """One "host": its supervisor and the table its router reads."""

    name: str
    sup: Supervisor
    table: LaneTable


@dataclass
class FakeLink:
    """The peer link, in process: each host's supervisor; ``cut`` hosts do not answer."""

    hosts: dict[str, Host]
    cut: set[str] = field(default_factory=set)

    def _sup(self, host: str) -> Supervisor:
        if host in self.cut:
            raise OSError(f"{host} unreachable")
        return self.hosts[host].sup

    async def lane_state(self, host: str, lane: str) -> LaneState | None:
        if host in self.cut:
            return None
        return self._sup(host).lane_state(lane)

    async def start_lane(self, host: str, lane: str) -> None:
        await self._sup(host).start_lane(lane)

    async def stop_lane(self, host: str, lane: str) -> None:
        await self._sup(host).stop_lane(lane)


def member_lane(this: str, port: int, rpc: int, state_dir: Path) -> LaneConfig:
    """The member lane ``big`` as host ``this`` configures it."""
    leader = this == HOSTS[0]
    dp = [
        "--data-parallel-size", "2",
        "--data-parallel-size-local", "1",
        "--data-parallel-address", "127.0.0.1",
        "--data-parallel-rpc-port", str(rpc),
        "--dp-heartbeat-s", "0.1",
        "--dp-heartbeat-timeout-s", "1",
    ]  # fmt: skip
    if not leader:
        dp += ["--headless", "--data-parallel-start-rank", "1"]
    argv = sim_command(port, lane_name=f"big-{this}", startup_delay=0.2, extra=dp)
    return LaneConfig(
        name="big",
        role="text",
        variant="v3",
        npus=(0,),
        port=port if leader else 0,
        model="qwen3.5-9b",
        command=tuple(argv),
        env={"QWEND_SIM_STATE_DIR": str(state_dir)},
        health=FAST_HEALTH,
        restart=FAST_RESTART,
        group=GroupConfig(members=HOSTS, this=this, start_order=StartOrder.LEADER_FIRST),
    )


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    port, rpc = free_port(), free_port()
    made: dict[str, Host] = {}
    for name in HOSTS:
        lane = member_lane(name, port, rpc, tmp_path / "sim-state")
        cfg = Config(daemon=DaemonConfig(log_dir=tmp_path / name / "logs"), lanes=(lane,))
        table = LaneTable()
        made[name] = Host(name, Supervisor(cfg, table), table)
    yield made
    for host in made.values():
        await host.sup.shutdown(drain_timeout=0)


def pid(host: Host) -> int | None:
    return host.sup.snapshot("big").pid


def routed(host: Host) -> bool:
    lane = host.table.get("big")
    return lane is not None and lane.accepting


async def run_group(coord: GroupCoordinator) -> asyncio.Task[None]:
    await coord.start()
    return asyncio.create_task(coord.run())


async def test_the_group_starts_leader_first_and_is_routed_only_once_every_member_is_up(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    await lead.sup.start()
    await follow.sup.start()
    assert lead.sup.lane_state("big") is S.STOPPED, "a group lane waits for its coordinator"
    coord = GroupCoordinator(lead.sup, lead.sup.config.lanes[0], FakeLink(hosts), poll_s=0.2)
    task = await run_group(coord)
    try:
        assert lead.sup.lane_state("big") is S.STARTING
        assert follow.sup.lane_state("big") is S.STOPPED, "the follower waits for the leader"
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
        assert routed(lead)
        assert not routed(follow), "a headless follower is never routed"
        assert dict(coord.view().members) == {
            "node0": MemberStatus.READY,
            "node1": MemberStatus.READY,
        }
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await coord.stop("test over")
    assert coord.machine.state is GroupState.STOPPED
    assert pid(lead) is None and pid(follow) is None
    assert not routed(lead)


async def test_a_killed_follower_restarts_the_group_as_a_unit_in_order(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    coord = GroupCoordinator(lead.sup, lead.sup.config.lanes[0], FakeLink(hosts), poll_s=0.2)
    task = await run_group(coord)
    try:
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
        old_lead, old_follow = pid(lead), pid(follow)
        assert old_lead is not None and old_follow is not None
        os.kill(old_follow, signal.SIGKILL)
        await until(lambda: not routed(lead), 15, "the leader out of routing")
        await until(lambda: coord.machine.restarts == 1, 30, "a group restart")
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready again")
        new_lead, new_follow = pid(lead), pid(follow)
        assert new_lead not in (None, old_lead), "the leader was restarted with its follower"
        assert new_follow not in (None, old_follow)
        lead_start = lead.sup.snapshot("big").started_at
        follow_start = follow.sup.snapshot("big").started_at
        assert lead_start is not None and follow_start is not None
        assert lead_start <= follow_start, "leader first"
        assert routed(lead)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await coord.stop("test over")


async def test_a_follower_stops_its_member_when_the_leader_host_is_unreachable(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    link = FakeLink(hosts)
    coord = GroupCoordinator(lead.sup, lead.sup.config.lanes[0], link, poll_s=0.2)
    task = await run_group(coord)
    watch = FollowerWatch(follow.sup, follow.sup.config.lanes[0], link, grace_s=1.0, poll_s=0.1)
    watching = asyncio.create_task(watch.run())
    try:
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
        task.cancel()  # the leader's host goes silent: nobody drives the group any more
        await asyncio.gather(task, return_exceptions=True)
        link.cut.add("node0")
        await until(lambda: follow.sup.lane_state("big") is S.STOPPED, 15, "the follower stopped")
        assert pid(follow) is None
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        link.cut.clear()
        await coord.stop("test over")


async def test_a_group_member_that_ends_is_not_restarted_by_its_own_host(
    hosts: dict[str, Host],
) -> None:
    follow = hosts["node1"]
    await follow.sup.start_lane("big")
    await until(lambda: follow.sup.lane_state("big") is S.READY, 15, "the follower running")
    # No leader: the headless member gives up joining only after its join timeout, so end it.
    old = pid(follow)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await until(lambda: follow.sup.lane_state("big") is S.BACKOFF, 15, "the member down")
    snap = follow.sup.snapshot("big")
    assert snap.reason is not None and "lane group restarts it" in snap.reason
    # A plain lane would be back within its backoff (0.5 s at most); this one stays down.
    with pytest.raises(LaneError, match="not ready within"):
        await follow.sup.wait_ready("big", 4 * FAST_RESTART.backoff_max_s)
    assert follow.sup.snapshot("big").pid is None
    assert follow.sup.lane_state("big") is S.BACKOFF
