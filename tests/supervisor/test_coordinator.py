"""Lane groups across two supervisors (two "hosts" in one process) with real qwend-sim
data parallel members: a leader lane and a ``--headless`` follower lane."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qwend.errors import LaneError
from qwend.supervisor.coordinator import FollowerWatch, GroupCoordinator
from qwend.supervisor.group import GroupState, MemberStatus
from qwend.supervisor.states import LaneState
from tests.support.groups import FakeLink, Host, make_hosts, pid, routed
from tests.support.lanescripts.factory import FAST_RESTART
from tests.support.polling import until

S = LaneState


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    async for made in make_hosts(tmp_path):
        yield made


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


async def test_a_stop_does_not_wait_its_whole_deadline_for_a_member_host_that_is_gone(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    link = FakeLink(hosts)
    coord = GroupCoordinator(lead.sup, lead.sup.config.lanes[0], link, poll_s=0.2)
    task = await run_group(coord)
    try:
        await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        link.cut.add("node1")  # its qwend is down (or cut off): it stops its member itself
        started = time.monotonic()
        await coord.stop("qwend shutting down", timeout_s=60)
        took = time.monotonic() - started
        assert coord.machine.state is GroupState.STOPPED
        assert pid(lead) is None
        assert took < 30, f"waited {took:.1f}s for a host that cannot answer"
    finally:
        link.cut.clear()
        await coord.stop("test over")
        await follow.sup.stop_member("big")


async def test_a_group_stopped_while_its_first_member_spawns_leaves_nothing_open(
    hosts: dict[str, Host],
) -> None:
    # A stop that cancels a spawn in flight: the child is killed by asyncio, and the lane
    # log opened for it must be closed too (pytest turns a leaked file into an error).
    lead, follow = hosts["node0"], hosts["node1"]
    coord = GroupCoordinator(lead.sup, lead.sup.config.lanes[0], FakeLink(hosts), poll_s=0.2)
    await coord.start()
    await coord.stop("stopped at once")
    assert coord.machine.state is GroupState.STOPPED
    assert pid(lead) is None and pid(follow) is None
