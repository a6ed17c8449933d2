"""Reload planning (pure): what a new, already validated Config does to the running lanes.

Only what changed is touched: lanes whose ``spawn_key()`` changed are restarted
(when running), new lanes are added and started when they are the active lane of
their role, removed lanes are drained and stopped, and every kept lane gets its new
settings in place (health, stop, restart and capability settings need no restart).
The active lane of each role carries over when the new configuration still allows
it (``resolve_active``, also used to restore the persisted choices at start-up).
A role whose active lane changes (its promoted lane was removed or moved to another
role) gets its new active lane started when it is down: a promotion left it stopped,
and nothing else would ever start it again.

``plan_reload`` decides; ``Supervisor.reload`` carries the plan out on its lanes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qwend.config.model import Config, LaneConfig
from qwend.supervisor.states import LaneState

KEPT_DOWN: frozenset[LaneState] = frozenset({LaneState.STOPPED, LaneState.FAILED})
"""States of a lane that a reload does not restart: no process, and none coming on its own."""


@dataclass(frozen=True)
class DroppedChoice:
    """An active-lane choice that the configuration no longer allows."""

    role: str
    lane: str
    now_role: str | None
    """The lane's role in the configuration; None when the lane is no longer configured."""


@dataclass(frozen=True)
class ActiveLanes:
    """The active lane per role under a configuration, and the choices it had to drop."""

    active: Mapping[str, str]
    """Role -> active lane: the configured defaults overlaid by the allowed choices."""
    dropped: tuple[DroppedChoice, ...]


def resolve_active(config: Config, wanted: Mapping[str, str]) -> ActiveLanes:
    """The configuration's default active lanes, overlaid by the ``wanted`` choices it allows.

    A choice is allowed when its lane is still configured and still serves that role.
    """
    active = config.default_active()
    dropped: list[DroppedChoice] = []
    for role, name in wanted.items():
        try:
            lane = config.lane(name)
        except KeyError:
            dropped.append(DroppedChoice(role, name, None))
            continue
        if lane.role != role:
            dropped.append(DroppedChoice(role, name, lane.role))
            continue
        active[role] = name
    return ActiveLanes(active, tuple(dropped))


@dataclass(frozen=True)
class ReloadReport:
    """What a reload did to the lanes."""

    restarted: tuple[str, ...]
    started: tuple[str, ...]
    stopped: tuple[str, ...]
    """Lanes no longer configured (removed: drained and stopped)."""
    unchanged: tuple[str, ...]
    added: tuple[str, ...] = ()
    """Lanes new in the configuration (started only when active: see ``started``)."""


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does, in the order the supervisor does it."""

    config: Config
    """The new configuration; its lane order is the new order of the lanes."""
    remove: tuple[str, ...]
    """Lanes no longer configured: drained (in-flight requests finish), stopped, forgotten."""
    restart: tuple[str, ...]
    """Running lanes whose process settings changed: stopped, given them, started again."""
    update: tuple[LaneConfig, ...]
    """Every kept lane with its new settings, applied in place (no restart by itself)."""
    add: tuple[LaneConfig, ...]
    """Lanes new in the configuration (stopped at first)."""
    start: tuple[str, ...]
    """Lanes that become the active lane of their role and are down (new, stopped, failed)."""
    active: ActiveLanes
    """Role -> active lane under the new configuration."""

    @property
    def report(self) -> ReloadReport:
        """What the plan does, for operators (``unchanged``: kept and not restarted)."""
        touched = {*self.restart, *self.start, *(lane.name for lane in self.add)}
        return ReloadReport(
            restarted=self.restart,
            started=self.start,
            stopped=self.remove,
            unchanged=tuple(lane.name for lane in self.config.lanes if lane.name not in touched),
            added=tuple(lane.name for lane in self.add),
        )


def plan_reload(
    running: Config,
    states: Mapping[str, LaneState],
    active: Mapping[str, str],
    new: Config,
) -> ReloadPlan:
    """Plan applying ``new`` to lanes running ``running`` (lane -> state, role -> active lane)."""
    old = {lane.name: lane for lane in running.lanes}
    wanted = {lane.name for lane in new.lanes}
    update = tuple(lane for lane in new.lanes if lane.name in old)
    add = tuple(lane for lane in new.lanes if lane.name not in old)
    resolved = resolve_active(new, active)

    def becomes_active_down(lane: LaneConfig) -> bool:
        if resolved.active.get(lane.role) != lane.name:
            return False
        if lane.name not in old:
            return True
        was_active = active.get(lane.role) == lane.name
        return not was_active and states.get(lane.name, LaneState.STOPPED) in KEPT_DOWN

    return ReloadPlan(
        config=new,
        remove=tuple(name for name in old if name not in wanted),
        restart=tuple(
            lane.name
            for lane in update
            if lane.spawn_key() != old[lane.name].spawn_key()
            and states.get(lane.name, LaneState.STOPPED) not in KEPT_DOWN
        ),
        update=update,
        add=add,
        start=tuple(lane.name for lane in new.lanes if becomes_active_down(lane)),
        active=resolved,
    )
