"""The lane group state machine (pure): order, readiness, restart as a unit, crash loop."""

from __future__ import annotations

import random

import pytest

from qwend.config.model import GroupConfig, RestartConfig, StartOrder
from qwend.supervisor.group import (
    TRANSITIONS,
    Action,
    ActionKind,
    GroupEvent,
    GroupMachine,
    GroupState,
    IllegalGroupTransition,
    LeaderWatch,
    MemberStatus,
    group_transition,
    member_status,
)
from qwend.supervisor.states import LaneState

M = MemberStatus
RESTART = RestartConfig(backoff_min_s=1.0, backoff_max_s=8.0, crash_loop_limit=2)


def start(member: str) -> Action:
    return Action(ActionKind.START, member)


def stop(member: str) -> Action:
    return Action(ActionKind.STOP, member)


def state(g: GroupMachine) -> GroupState:
    """The group's state, read through a call (mypy would narrow the attribute between
    the steps of a test)."""
    return g.state


ROUTE = Action(ActionKind.ROUTE)
UNROUTE = Action(ActionKind.UNROUTE)


def machine(
    members: tuple[str, ...] = ("node0", "node1", "node2"),
    order: StartOrder = StartOrder.LEADER_FIRST,
) -> GroupMachine:
    group = GroupConfig(members=members, this=members[0], start_order=order)
    return GroupMachine(group, RESTART, random.Random(7))


def all_(
    status: MemberStatus, members: tuple[str, ...] = ("node0", "node1", "node2")
) -> dict[str, MemberStatus]:
    return dict.fromkeys(members, status)


def bring_up(g: GroupMachine) -> dict[str, MemberStatus]:
    """Start a leader-first group of three to ready; the member statuses at the end."""
    seen = all_(M.STOPPED)
    assert g.start(seen) == (start("node0"),)
    seen["node0"] = M.STARTING
    assert g.observe(0.0, seen) == (start("node1"),)
    seen["node1"] = M.READY
    assert g.observe(0.0, seen) == (start("node2"),)
    seen["node2"] = M.READY
    assert g.observe(0.0, seen) == ()
    assert state(g) is GroupState.STARTING, "the leader has not passed readiness yet"
    seen["node0"] = M.READY
    assert g.observe(0.0, seen) == (ROUTE,)
    assert state(g) is GroupState.READY
    return seen


def test_members_start_one_after_the_other_leader_first_and_the_group_is_ready_last() -> None:
    bring_up(machine())


def test_followers_first_starts_the_leader_last() -> None:
    g = machine(("head", "w1", "w2"), StartOrder.FOLLOWERS_FIRST)
    seen = all_(M.STOPPED, ("head", "w1", "w2"))
    assert g.start(seen) == (start("w1"),)
    seen["w1"] = M.STARTING
    assert g.observe(0.0, seen) == (start("w2"),)
    seen["w2"] = M.READY
    assert g.observe(0.0, seen) == (start("head"),)
    seen["head"] = M.READY
    assert g.observe(0.0, seen) == (ROUTE,)


def test_a_member_is_not_started_before_the_previous_one_runs() -> None:
    g = machine()
    seen = all_(M.STOPPED)
    g.start(seen)
    assert g.observe(0.0, seen) == (), "node0 is not up yet: node1 must wait"
    assert g.observe(0.0, {**seen, "node0": M.UNREACHABLE}) == ()


def test_a_failed_member_stops_every_member_then_the_group_restarts_in_order_after_backoff() -> (
    None
):
    g = machine()
    seen = bring_up(g)
    seen["node1"] = M.DOWN
    actions = g.observe(10.0, seen)
    assert actions == (UNROUTE, stop("node2"), stop("node1"), stop("node0"))
    assert state(g) is GroupState.RESTARTING
    assert g.reason == "member node1 failed"
    stopped = all_(M.STOPPED)
    assert g.observe(11.0, stopped) == ()
    assert state(g) is GroupState.BACKOFF
    assert g.retry_at is not None and 11.5 <= g.retry_at <= 12.0
    assert g.observe(11.4, stopped) == ()
    assert g.observe(12.0, stopped) == (start("node0"),)
    assert state(g) is GroupState.STARTING
    assert g.restarts == 1


def test_a_member_that_stops_unasked_counts_as_lost() -> None:
    g = machine()
    seen = bring_up(g)
    actions = g.observe(0.0, {**seen, "node2": M.STOPPED})
    assert actions == (UNROUTE, stop("node1"), stop("node0"))
    assert g.reason == "member node2 stopped"


def test_an_unreachable_member_of_a_ready_group_changes_nothing() -> None:
    g = machine()
    seen = bring_up(g)
    assert g.observe(0.0, {**seen, "node2": M.UNREACHABLE}) == ()
    assert state(g) is GroupState.READY


def test_the_group_waits_in_restarting_until_every_host_confirms_its_member_stopped() -> None:
    g = machine()
    seen = bring_up(g)
    g.observe(0.0, {**seen, "node0": M.DOWN})
    half = {"node0": M.STOPPED, "node1": M.STOPPED, "node2": M.UNREACHABLE}
    assert g.observe(1.0, half) == ()
    assert state(g) is GroupState.RESTARTING
    assert g.observe(2.0, {**half, "node2": M.STARTING}) == (stop("node2"),)
    assert g.observe(3.0, {**half, "node2": M.STOPPED}) == ()
    assert state(g) is GroupState.BACKOFF


def test_too_many_group_restarts_are_a_crash_loop_until_started_again() -> None:
    g = machine()
    now = 0.0
    seen = bring_up(g)
    for _ in range(RESTART.crash_loop_limit):
        g.observe(now, {**seen, "node1": M.DOWN})
        g.observe(now, all_(M.STOPPED))
        assert state(g) is GroupState.BACKOFF
        now += 100.0
        g.observe(now, all_(M.STOPPED))
        seen = all_(M.STARTING)
        g.observe(now, {**seen, "node0": M.READY})
        assert state(g) is GroupState.READY
    g.observe(now, {**all_(M.READY), "node1": M.DOWN})
    g.observe(now, all_(M.STOPPED))
    assert state(g) is GroupState.FAILED
    assert g.reason is not None and "crash loop" in g.reason
    assert g.start(all_(M.STOPPED)) == (start("node0"),)
    assert state(g) is GroupState.STARTING


def test_a_stop_stops_every_member_in_reverse_start_order() -> None:
    g = machine()
    seen = bring_up(g)
    assert g.stop(seen, "stopped by request") == (
        UNROUTE,
        stop("node2"),
        stop("node1"),
        stop("node0"),
    )
    assert state(g) is GroupState.STOPPING
    assert g.observe(0.0, {**all_(M.STOPPED), "node1": M.STOPPING}) == ()
    assert g.observe(0.0, all_(M.STOPPED)) == ()
    assert state(g) is GroupState.STOPPED


def test_a_stop_during_backoff_cancels_the_restart() -> None:
    g = machine()
    seen = bring_up(g)
    g.observe(0.0, {**seen, "node0": M.DOWN})
    g.observe(0.0, all_(M.STOPPED))
    assert state(g) is GroupState.BACKOFF
    assert g.stop(all_(M.STOPPED), "stopped by request") == ()
    assert state(g) is GroupState.STOPPED
    assert g.observe(1000.0, all_(M.STOPPED)) == ()


def test_a_member_failing_during_the_start_restarts_the_group() -> None:
    g = machine()
    seen = all_(M.STOPPED)
    g.start(seen)
    seen["node0"] = M.STARTING
    g.observe(0.0, seen)
    assert g.observe(0.0, {**seen, "node1": M.DOWN}) == (stop("node1"), stop("node0"))
    assert state(g) is GroupState.RESTARTING


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, M.UNREACHABLE),
        (LaneState.STOPPED, M.STOPPED),
        (LaneState.STARTING, M.STARTING),
        (LaneState.READY, M.READY),
        (LaneState.DRAINING, M.READY),
        (LaneState.UNHEALTHY, M.DOWN),
        (LaneState.BACKOFF, M.DOWN),
        (LaneState.FAILED, M.DOWN),
        (LaneState.STOPPING, M.STOPPING),
    ],
)
def test_member_status_of_each_lane_state(state: LaneState | None, expected: MemberStatus) -> None:
    assert member_status(state) is expected


def test_every_pair_not_in_the_table_is_illegal() -> None:
    for state in GroupState:
        for event in GroupEvent:
            if (state, event) in TRANSITIONS:
                assert group_transition(state, event) is TRANSITIONS[(state, event)]
            else:
                with pytest.raises(IllegalGroupTransition, match=event.value):
                    group_transition(state, event)


def test_every_state_can_be_stopped() -> None:
    for state in GroupState:
        assert (state, GroupEvent.STOP) in TRANSITIONS


def test_a_follower_stops_its_member_once_the_leader_host_stays_unreachable() -> None:
    watch = LeaderWatch("node0", grace_s=5.0)
    assert watch.observe(0.0, None, member_runs=True) is None
    assert watch.observe(4.9, None, member_runs=True) is None
    reason = watch.observe(5.0, None, member_runs=True)
    assert reason is not None and "node0 has been unreachable for 5s" in reason


def test_a_leader_that_answers_again_resets_the_watch() -> None:
    watch = LeaderWatch("node0", grace_s=5.0)
    watch.observe(0.0, None, member_runs=True)
    assert watch.observe(4.0, LaneState.STARTING, member_runs=True) is None
    assert watch.observe(8.0, None, member_runs=True) is None
    assert watch.observe(13.0, None, member_runs=True) is not None


def test_a_leader_member_left_stopped_also_stops_the_follower_member() -> None:
    watch = LeaderWatch("node0", grace_s=2.0)
    assert watch.observe(0.0, LaneState.STOPPED, member_runs=True) is None
    reason = watch.observe(2.5, LaneState.FAILED, member_runs=True)
    assert reason is not None and "failed there" in reason


def test_nothing_to_stop_when_the_member_is_not_running() -> None:
    watch = LeaderWatch("node0", grace_s=1.0)
    assert watch.observe(0.0, None, member_runs=False) is None
    assert watch.observe(10.0, None, member_runs=False) is None


def test_a_start_its_host_did_not_take_is_asked_again_not_counted_as_a_loss() -> None:
    g = machine()
    seen = all_(M.STOPPED)
    g.start(seen)
    seen["node0"] = M.STARTING
    assert g.observe(0.0, seen) == (start("node1"),)
    g.start_failed("node1")  # node1's qwend was not up yet
    assert g.observe(0.0, seen) == (start("node1"),)
    assert state(g) is GroupState.STARTING
