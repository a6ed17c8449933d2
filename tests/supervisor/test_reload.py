"""The reload plan (pure): which lanes a new configuration adds, removes, restarts, updates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pytest

from qwend.config.model import Config, HealthConfig, LaneConfig
from qwend.supervisor.reload import (
    DroppedChoice,
    ReloadReport,
    plan_reload,
    resolve_active,
)
from qwend.supervisor.states import LaneState

S = LaneState


def lane(name: str, role: str, npu: int, *, standby: bool = False) -> LaneConfig:
    return LaneConfig(
        name=name,
        role=role,
        variant="v3",
        npus=(npu,),
        port=18000 + npu,
        model="qwen",
        command=("qwend-sim", "serve"),
        standby=standby,
    )


A = lane("a", "a", 0)
B = lane("b", "b", 1)
B2 = lane("b2", "b", 2, standby=True)
C = lane("c", "c", 3)
B3 = lane("b3", "b", 4, standby=True)
RUNNING = Config(lanes=(A, B, B2))
STATES = {"a": S.READY, "b": S.READY, "b2": S.STOPPED}
ACTIVE = {"a": "a", "b": "b"}


def env(lc: LaneConfig) -> LaneConfig:
    """``lc`` with a process setting changed (its spawn key differs)."""
    return replace(lc, env={"CHANGED": "1"})


def health(lc: LaneConfig) -> LaneConfig:
    """``lc`` with a setting changed that needs no restart."""
    return replace(lc, health=HealthConfig(failure_threshold=9))


@dataclass(frozen=True)
class Case:
    new: tuple[LaneConfig, ...]
    report: ReloadReport
    remove: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    states: Mapping[str, LaneState] = field(default_factory=lambda: STATES)
    active: Mapping[str, str] = field(default_factory=lambda: ACTIVE)
    new_active: Mapping[str, str] = field(default_factory=lambda: ACTIVE)
    dropped: tuple[DroppedChoice, ...] = ()


def report(
    restarted: tuple[str, ...] = (),
    started: tuple[str, ...] = (),
    stopped: tuple[str, ...] = (),
    unchanged: tuple[str, ...] = (),
    added: tuple[str, ...] = (),
) -> ReloadReport:
    return ReloadReport(restarted, started, stopped, unchanged, added)


CASES = {
    "nothing changed": Case((A, B, B2), report(unchanged=("a", "b", "b2"))),
    "health settings are updated in place": Case(
        (health(A), B, B2), report(unchanged=("a", "b", "b2"))
    ),
    "a running lane whose env changed restarts": Case(
        (A, env(B), B2), report(restarted=("b",), unchanged=("a", "b2")), restart=("b",)
    ),
    "a stopped lane whose env changed takes it at its next start": Case(
        (A, B, env(B2)), report(unchanged=("a", "b", "b2"))
    ),
    "a removed lane is stopped": Case(
        (A, B), report(stopped=("b2",), unchanged=("a", "b")), remove=("b2",)
    ),
    "a new active lane starts, a new standby lane is only added": Case(
        (A, B, B2, B3, C),
        report(started=("c",), unchanged=("a", "b", "b2"), added=("b3", "c")),
        add=("b3", "c"),
        start=("c",),
        new_active=ACTIVE | {"c": "c"},
    ),
    "a renamed lane is a removed lane and a new one": Case(
        (A, replace(B, name="b-renamed"), B2),
        report(started=("b-renamed",), stopped=("b",), unchanged=("a", "b2"), added=("b-renamed",)),
        remove=("b",),
        add=("b-renamed",),
        start=("b-renamed",),
        new_active={"a": "a", "b": "b-renamed"},
        dropped=(DroppedChoice("b", "b", None),),
    ),
    "a promoted lane stays active": Case(
        (A, B, B2),
        report(unchanged=("a", "b", "b2")),
        states=STATES | {"b": S.STOPPED, "b2": S.READY},
        active={"a": "a", "b": "b2"},
        new_active={"a": "a", "b": "b2"},
    ),
    "a removed active lane gives its role back to the configured lane": Case(
        (A, B),
        report(stopped=("b2",), unchanged=("a", "b")),
        remove=("b2",),
        active={"a": "a", "b": "b2"},
        dropped=(DroppedChoice("b", "b2", None),),
    ),
    "a removed promoted lane starts the stopped configured lane of its role": Case(
        (A, B),
        report(started=("b",), stopped=("b2",), unchanged=("a",)),
        remove=("b2",),
        start=("b",),
        states=STATES | {"b": S.STOPPED, "b2": S.READY},
        active={"a": "a", "b": "b2"},
        dropped=(DroppedChoice("b", "b2", None),),
    ),
    "a removed promoted lane starts the failed configured lane of its role": Case(
        (A, B),
        report(started=("b",), stopped=("b2",), unchanged=("a",)),
        remove=("b2",),
        start=("b",),
        states=STATES | {"b": S.FAILED, "b2": S.READY},
        active={"a": "a", "b": "b2"},
        dropped=(DroppedChoice("b", "b2", None),),
    ),
    "a promoted lane moved to another role starts the configured lane of its old role": Case(
        (A, B, replace(B2, role="x")),
        report(started=("b",), unchanged=("a", "b2")),
        start=("b",),
        states=STATES | {"b": S.STOPPED, "b2": S.READY},
        active={"a": "a", "b": "b2"},
        dropped=(DroppedChoice("b", "b2", "x"),),
    ),
    "an active lane stopped by an operator stays stopped": Case(
        (A, B, B2),
        report(unchanged=("a", "b", "b2")),
        states=STATES | {"b": S.STOPPED},
    ),
    "an active lane that changed role is dropped from its old role": Case(
        (A, B, replace(B2, role="x")),
        report(unchanged=("a", "b", "b2")),
        active={"a": "a", "b": "b2"},
        dropped=(DroppedChoice("b", "b2", "x"),),
    ),
    "the lanes follow the new order": Case((B2, A, B), report(unchanged=("b2", "a", "b"))),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan(case: Case) -> None:
    plan = plan_reload(RUNNING, case.states, case.active, Config(lanes=case.new))
    kept = tuple(lc for lc in case.new if lc.name in STATES)
    assert plan.config.lanes == case.new
    assert plan.remove == case.remove
    assert plan.restart == case.restart
    assert plan.update == kept
    assert tuple(lc.name for lc in plan.add) == case.add
    assert plan.start == case.start
    assert plan.active.active == case.new_active
    assert plan.active.dropped == case.dropped
    assert plan.report == case.report


@pytest.mark.parametrize("state", list(LaneState), ids=str)
def test_a_changed_lane_restarts_unless_it_is_stopped_or_failed(state: LaneState) -> None:
    plan = plan_reload(RUNNING, STATES | {"b": state}, ACTIVE, Config(lanes=(A, env(B), B2)))
    restarts = state not in (S.STOPPED, S.FAILED)
    assert plan.restart == (("b",) if restarts else ())
    assert plan.update[1] == env(B)  # the new settings either way


def test_a_restarted_lane_is_not_counted_unchanged() -> None:
    plan = plan_reload(RUNNING, STATES, ACTIVE, Config(lanes=(env(A), env(B), B2)))
    assert plan.report == report(restarted=("a", "b"), unchanged=("b2",))


def test_resolve_active_overlays_allowed_choices_on_the_defaults() -> None:
    config = Config(lanes=(A, B, B2, C))
    resolved = resolve_active(config, {"b": "b2", "c": "gone", "a": "b"})
    assert resolved.active == {"a": "a", "b": "b2", "c": "c"}
    assert resolved.dropped == (DroppedChoice("c", "gone", None), DroppedChoice("a", "b", "b"))
