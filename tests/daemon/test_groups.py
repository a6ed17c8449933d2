"""The member link over peers' control clients, and lane groups without peers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from qwend.api.messages import LaneAction, LaneActionResult, LaneInfo
from qwend.config.model import Config, DaemonConfig, GroupConfig, LaneConfig
from qwend.daemon.groups import LaneGroups, PeerMemberLink
from qwend.errors import ControlError, LaneError, QwendError
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.group import GroupState, MemberStatus
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import Supervisor
from tests.support.groups import FakeLink, Host, make_hosts, make_ray_hosts, pid, routed
from tests.support.polling import until


def info(state: str) -> LaneInfo:
    return LaneInfo(name="big", role="text", variant="v3", state=state, active=True, standby=False)


@dataclass
class FakePeer:
    """A peer's control client: answers with ``state`` or raises ``error``."""

    state: str = "ready"
    error: Exception | None = None
    calls: list[tuple[str, LaneAction, bool, bool]] = field(default_factory=list)

    async def lane(self, name: str) -> LaneInfo:
        if self.error is not None:
            raise self.error
        return info(self.state)

    async def lane_action(
        self, name: str, action: LaneAction, *, force: bool = False, now: bool = False
    ) -> LaneActionResult:
        if self.error is not None:
            raise self.error
        self.calls.append((name, action, force, now))
        return LaneActionResult(action=action, lane=info(self.state))


def link_to(peers: dict[str, FakePeer]) -> PeerMemberLink:
    async def client(host: str) -> FakePeer:
        try:
            return peers[host]
        except KeyError:
            raise QwendError(f"no [[peers]] entry named {host!r}") from None

    return PeerMemberLink(client)


async def test_the_link_reads_a_member_state_from_its_peer() -> None:
    link = link_to({"node1": FakePeer(state="starting")})
    assert await link.lane_state("node1", "big") is LaneState.STARTING


@pytest.mark.parametrize(
    "error", [ControlError("connection refused"), OSError("no route"), TimeoutError()]
)
async def test_a_peer_that_does_not_answer_is_unreachable(error: Exception) -> None:
    link = link_to({"node1": FakePeer(error=error)})
    assert await link.lane_state("node1", "big") is None


async def test_an_unknown_state_is_unreachable_not_a_crash() -> None:
    link = link_to({"node1": FakePeer(state="exploded")})
    assert await link.lane_state("node1", "big") is None


async def test_start_and_stop_are_forced_and_a_stop_is_immediate() -> None:
    peer = FakePeer()
    link = link_to({"node1": peer})
    await link.start_lane("node1", "big")
    await link.stop_lane("node1", "big")
    assert peer.calls == [
        ("big", LaneAction.START, True, False),
        ("big", LaneAction.STOP, True, True),
    ]


async def test_a_member_host_missing_from_peers_is_a_clear_error() -> None:
    link = link_to({})
    assert await link.lane_state("node9", "big") is None
    with pytest.raises(QwendError, match="no \\[\\[peers\\]\\] entry named 'node9'"):
        await link.start_lane("node9", "big")


@pytest.mark.integration  # the supervisor's orphan guard is a process
async def test_without_a_peer_link_group_lanes_stay_stopped(tmp_path: Path) -> None:
    lane = LaneConfig(
        name="big",
        role="text",
        variant="v3",
        npus=(0,),
        port=0,
        model="m",
        command=("/bin/false",),
        group=GroupConfig(members=("node0", "node1"), this="node1"),
    )
    sup = Supervisor(Config(daemon=DaemonConfig(log_dir=tmp_path), lanes=(lane,)), LaneTable())
    groups = LaneGroups(sup, link=None)
    await sup.start()
    await groups.start()
    assert sup.lane_state("big") is LaneState.STOPPED
    assert groups.views() == {}
    await groups.stop("test over")
    await sup.shutdown(drain_timeout=0)


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    async for made in make_hosts(tmp_path):
        yield made


async def test_an_operator_stop_and_start_of_the_leader_lane_act_on_the_whole_group(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    groups = LaneGroups(lead.sup, FakeLink(hosts))
    await lead.sup.start()
    await groups.start()
    coord = groups.coordinators["big"]
    await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready")
    assert routed(lead)
    view = lead.sup.snapshot("big").group
    assert view is not None and view.state is GroupState.READY
    assert view.members == (("node0", MemberStatus.READY), ("node1", MemberStatus.READY))
    follower_view = follow.sup.snapshot("big").group
    assert follower_view is not None and follower_view.state is None
    assert follower_view.leader == "node0"
    await lead.sup.stop_lane("big")  # what qwenctl stop big does on the leader's host
    assert coord.machine.state is GroupState.STOPPED
    assert pid(lead) is None and pid(follow) is None
    await lead.sup.start_lane("big")
    await until(lambda: coord.machine.state is GroupState.READY, 30, "the group ready again")
    assert pid(follow) is not None
    await groups.stop("test over")
    assert pid(lead) is None and pid(follow) is None


async def test_a_reload_that_changes_the_leader_member_restarts_the_group_as_a_unit(
    hosts: dict[str, Host],
) -> None:
    lead, follow = hosts["node0"], hosts["node1"]
    groups = LaneGroups(lead.sup, FakeLink(hosts))
    await lead.sup.start()
    await groups.start()
    old = groups.coordinators["big"]
    await until(lambda: old.machine.state is GroupState.READY, 30, "the group ready")
    old_pids = (pid(lead), pid(follow))
    lane = lead.sup.config.lanes[0]
    changed = replace(lane, command=(*lane.command, "--max-num-seqs", "16"))
    report = await lead.sup.reload(replace(lead.sup.config, lanes=(changed,)))
    assert report.restarted == ("big",)
    await groups.reload()
    new = groups.coordinators["big"]
    assert new is not old and new.config == changed
    await until(lambda: new.machine.state is GroupState.READY, 30, "the group ready again")
    assert routed(lead)
    assert pid(lead) not in (None, old_pids[0])
    assert pid(follow) not in (None, old_pids[1])
    await groups.reload()  # nothing changed: the running group is kept as it is
    assert groups.coordinators["big"] is new
    await groups.stop("test over")


def group_state(groups: LaneGroups) -> GroupState:
    """The Ray group's state, read through a call (mypy would narrow it between steps)."""
    return groups.coordinators["ray"].machine.state


@pytest.fixture
async def ray_hosts(tmp_path: Path) -> AsyncIterator[dict[str, Host]]:
    async for made in make_ray_hosts(tmp_path):
        yield made


async def test_a_lane_on_a_group_follows_the_operators_stop_start_and_a_reload_of_it(
    ray_hosts: dict[str, Host],
) -> None:
    lead = ray_hosts["node0"]
    groups = LaneGroups(lead.sup, FakeLink(ray_hosts))
    await lead.sup.start()
    with pytest.raises(LaneError, match="not ready"):
        await lead.sup.start_lane("engine")  # what qwenctl start engine does
    await groups.start()
    await until(lambda: lead.sup.lane_state("engine") is LaneState.READY, 30, "engine ready")
    await lead.sup.stop_lane("ray")  # qwenctl stop ray: the engine goes first, then the group
    assert lead.sup.lane_state("engine") is LaneState.STOPPED
    assert group_state(groups) is GroupState.STOPPED
    await lead.sup.start_lane("ray")
    await until(lambda: lead.sup.lane_state("engine") is LaneState.READY, 30, "engine back")
    engine_pid = lead.sup.snapshot("engine").pid

    # A reload that changes the head restarts the cluster: the engine waits for it again.
    head = lead.sup.config.lane("ray")
    changed = replace(head, command=(*head.command, "# changed"))
    config = lead.sup.config
    lanes = tuple(changed if lane.name == "ray" else lane for lane in config.lanes)
    await lead.sup.reload(replace(config, lanes=lanes))
    await groups.reload()
    assert lead.sup.snapshot("engine").pid != engine_pid
    await until(
        lambda: (
            lead.sup.lane_state("engine") is LaneState.READY
            and lead.sup.snapshot("engine").pid != engine_pid
        ),
        30,
        "the engine on the new cluster",
    )
    assert group_state(groups) is GroupState.READY
    await groups.stop("test over")
    assert lead.sup.lane_state("engine") is LaneState.STOPPED
