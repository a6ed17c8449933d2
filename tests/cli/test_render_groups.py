"""``qwenctl status`` shows each lane group's state and members."""

from __future__ import annotations

from qwend.api.messages import DaemonInfo, GroupInfo, GroupMember, LaneInfo, StatusResponse
from qwend.cli.render import render_status
from qwend.control.views import group_info
from qwend.supervisor.group import GroupState, GroupView, MemberStatus

DAEMON = DaemonInfo(version="0", pid=1, started_at=0.0, uptime_s=1.0, config_path="x")


def status_of(*lanes: LaneInfo) -> str:
    return render_status(StatusResponse(daemon=DAEMON, active={}, lanes=lanes))


def test_the_leader_host_shows_the_group_state_and_every_member() -> None:
    view = GroupView(
        "big", "node0", GroupState.RESTARTING, "member node1 failed", 2,
        (("node0", MemberStatus.STOPPED), ("node1", MemberStatus.DOWN)),
    )  # fmt: skip
    lane = LaneInfo("big", "text", "v3", "stopped", True, False, group=group_info(view))
    text = status_of(lane)
    assert (
        "group big: restarting, 2 restarts: node0 stopped, node1 down (member node1 failed)" in text
    )


def test_a_follower_host_says_who_runs_the_group() -> None:
    view = GroupView("big", "node0", None, None, 0, (("node0", None), ("node1", None)))
    info = group_info(view)
    assert info == GroupInfo(leader="node0", members=(GroupMember("node0"), GroupMember("node1")))
    lane = LaneInfo("big", "text", "v3", "ready", False, False, group=info)
    assert "group big: run by node0: node0 ?, node1 ?" in status_of(lane)


def test_a_ready_group_shows_no_stale_reason_and_plain_lanes_no_group_line() -> None:
    view = GroupView(
        "big", "node0", GroupState.READY, "every member is up", 0,
        (("node0", MemberStatus.READY), ("node1", MemberStatus.READY)),
    )  # fmt: skip
    lane = LaneInfo("big", "text", "v3", "ready", True, False, group=group_info(view))
    plain = LaneInfo("small", "text", "v3", "ready", True, False)
    text = status_of(lane, plain)
    assert "group big: ready: node0 ready, node1 ready\n" in text
    assert "group small" not in text


def test_group_info_survives_the_codec() -> None:
    view = GroupView("big", "node0", GroupState.READY, None, 1, (("node0", MemberStatus.READY),))
    lane = LaneInfo("big", "text", "v3", "ready", True, False, group=group_info(view))
    assert LaneInfo.from_dict(lane.to_dict()) == lane
