"""The lane state machine: every (state, event) pair is either legal or raises."""

from __future__ import annotations

import ast
import inspect
import itertools

import pytest

import qwend.supervisor.states as lanes
from qwend.supervisor.states import (
    CLAIMING,
    ROUTABLE,
    RUNNING,
    TRANSITIONS,
    WANTED_UP,
    Effect,
    Event,
    IllegalTransition,
    LaneState,
    Transition,
    allowed_events,
    transition,
)

S = LaneState
E = Event
NO_PROCESS = {S.STOPPED, S.BACKOFF, S.FAILED}
ALL_PAIRS = list(itertools.product(LaneState, Event))


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda v: str(v))
def test_every_pair_is_in_the_table_or_raises(state: LaneState, event: Event) -> None:
    if (state, event) in TRANSITIONS:
        result = transition(state, event)
        assert result is TRANSITIONS[(state, event)]
        assert isinstance(result.new_state, LaneState)
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(state, event)
        assert info.value.state is state
        assert info.value.event is event
        assert state.value in str(info.value)
        assert event.value in str(info.value)


def test_every_state_and_event_has_a_docstring() -> None:
    tree = ast.parse(inspect.getsource(lanes))
    documented: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in {"LaneState", "Event", "Effect"}:
            body = node.body
            for first, second in itertools.pairwise(body):
                if (
                    isinstance(first, ast.Assign)
                    and isinstance(second, ast.Expr)
                    and isinstance(second.value, ast.Constant)
                ):
                    target = first.targets[0]
                    assert isinstance(target, ast.Name)
                    documented.add(f"{node.name}.{target.id}")
    expected = {f"LaneState.{m.name}" for m in LaneState}
    expected |= {f"Event.{m.name}" for m in Event}
    expected |= {f"Effect.{m.name}" for m in Effect}
    assert expected <= documented


def test_every_state_is_reachable_from_stopped() -> None:
    seen = {S.STOPPED}
    frontier = [S.STOPPED]
    while frontier:
        state = frontier.pop()
        for event in allowed_events(state):
            new = transition(state, event).new_state
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(LaneState)


def test_every_state_can_get_back_to_stopped() -> None:
    for state in LaneState:
        seen = {state}
        frontier = [state]
        while frontier:
            current = frontier.pop()
            for event in allowed_events(current):
                new = transition(current, event).new_state
                if new not in seen:
                    seen.add(new)
                    frontier.append(new)
        assert S.STOPPED in seen, state


def test_stop_is_accepted_in_every_state() -> None:
    for state in LaneState:
        result = transition(state, E.STOP)
        assert result.new_state in {S.STOPPED, S.STOPPING}


def test_stop_of_a_running_lane_terminates_and_of_a_down_lane_does_not() -> None:
    for state in RUNNING - {S.STOPPING}:
        assert Effect.TERMINATE in transition(state, E.STOP).effects
        assert transition(state, E.STOP).new_state is S.STOPPING
    for state in NO_PROCESS:
        assert Effect.TERMINATE not in transition(state, E.STOP).effects
        assert transition(state, E.STOP).new_state is S.STOPPED


def test_happy_path_start_ready_drain_stop() -> None:
    path = [E.START, E.READY, E.DRAIN, E.STOP, E.STOPPED]
    state = S.STOPPED
    effects: list[Effect] = []
    for event in path:
        result = transition(state, event)
        state = result.new_state
        effects.extend(result.effects)
    assert state is S.STOPPED
    assert effects == [
        Effect.SPAWN,
        Effect.ROUTE,
        Effect.UNROUTE,
        Effect.TERMINATE,
    ]


def test_crash_of_a_ready_lane_unroutes_and_schedules_a_restart() -> None:
    result = transition(S.READY, E.CRASHED)
    assert result == Transition(S.BACKOFF, (Effect.UNROUTE, Effect.SCHEDULE_RESTART))
    assert transition(S.BACKOFF, E.RETRY) == Transition(S.STARTING, (Effect.SPAWN,))


def test_unhealthy_lane_is_killed_then_restarted_or_failed() -> None:
    assert transition(S.READY, E.UNHEALTHY).effects == (Effect.UNROUTE, Effect.TERMINATE)
    assert transition(S.UNHEALTHY, E.CRASHED).new_state is S.BACKOFF
    assert transition(S.UNHEALTHY, E.CRASH_LOOP).new_state is S.FAILED
    with pytest.raises(IllegalTransition):
        transition(S.UNHEALTHY, E.READY)


def test_crash_loop_goes_to_failed_and_only_start_or_reset_leave_it() -> None:
    for state in (S.STARTING, S.READY, S.UNHEALTHY, S.DRAINING):
        assert transition(state, E.CRASH_LOOP).new_state is S.FAILED
    assert allowed_events(S.FAILED) == {E.START, E.RESET, E.STOP}
    assert Effect.RESET_CRASHES in transition(S.FAILED, E.START).effects
    assert Effect.RESET_CRASHES in transition(S.FAILED, E.RESET).effects
    with pytest.raises(IllegalTransition, match="allowed: reset, start, stop"):
        transition(S.FAILED, E.RETRY)


def test_backoff_can_be_cut_short_by_start_or_stop() -> None:
    assert transition(S.BACKOFF, E.START).effects == (Effect.CANCEL_RESTART, Effect.SPAWN)
    assert transition(S.BACKOFF, E.STOP) == Transition(S.STOPPED, (Effect.CANCEL_RESTART,))


def test_effects_route_only_into_routable_and_unroute_only_out_of_it() -> None:
    for (state, _event), result in TRANSITIONS.items():
        if Effect.ROUTE in result.effects:
            assert result.new_state in ROUTABLE
        if Effect.UNROUTE in result.effects:
            assert state in ROUTABLE
            assert result.new_state not in ROUTABLE
        if state in ROUTABLE and result.new_state not in ROUTABLE:
            assert Effect.UNROUTE in result.effects


def test_spawn_leads_to_starting_and_schedule_restart_to_backoff() -> None:
    for result in TRANSITIONS.values():
        if Effect.SPAWN in result.effects:
            assert result.new_state is S.STARTING
        if Effect.SCHEDULE_RESTART in result.effects:
            assert result.new_state is S.BACKOFF


def test_state_groups() -> None:
    assert set(LaneState) - RUNNING == NO_PROCESS
    assert ROUTABLE <= RUNNING
    assert RUNNING | {S.BACKOFF} == CLAIMING
    assert S.STOPPING not in WANTED_UP
    assert S.FAILED not in WANTED_UP
    for group in (RUNNING, ROUTABLE, CLAIMING, WANTED_UP):
        assert isinstance(group, frozenset)


def test_values_are_the_documented_names() -> None:
    assert [s.value for s in LaneState] == [
        "stopped",
        "starting",
        "ready",
        "unhealthy",
        "draining",
        "stopping",
        "backoff",
        "failed",
    ]
