"""What an operator can do from qwen-tui, and what each action will do to traffic (pure).

Every action that touches a lane or a role goes through a confirmation whose text
comes from ``impact``: which role loses or changes its lane, how many requests are
in flight on it, and whether a promotion runs in place or blue/green. The keys
live here too, so the footer, ``?`` help, the command palette and the man page
all list the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from qwend.api.messages import LaneInfo
from qwend.api.stats import StatsFrame


class Action(StrEnum):
    """Operator actions; lane actions act on the lane under the cursor."""

    PROMOTE = "promote"
    """Make the selected candidate the active lane of its role."""
    ROLLBACK = "rollback"
    """Revert the last promotion of the selected lane's role."""
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    DRAIN = "drain"
    """Stop routing new requests to the lane; in-flight ones finish."""
    RESET = "reset"
    """Clear a failed lane's crash-loop state so it may start again."""
    RELOAD = "reload"
    """Re-read the configuration and apply it (lanes whose config changed restart)."""


@dataclass(frozen=True)
class Key:
    """One key binding as help and the man page list it."""

    key: str
    action: str
    """The Textual action string the key runs."""
    description: str
    label: str = ""
    """Short name for the footer."""


ACTION_KEYS: dict[Action, str] = {
    Action.PROMOTE: "p",
    Action.ROLLBACK: "b",
    Action.START: "s",
    Action.STOP: "x",
    Action.RESTART: "r",
    Action.DRAIN: "d",
    Action.RESET: "e",
    Action.RELOAD: "R",
}

ACTION_TITLES: dict[Action, str] = {
    Action.PROMOTE: "Promote lane",
    Action.ROLLBACK: "Roll back role",
    Action.START: "Start lane",
    Action.STOP: "Stop lane",
    Action.RESTART: "Restart lane",
    Action.DRAIN: "Drain lane",
    Action.RESET: "Reset lane",
    Action.RELOAD: "Reload configuration",
}

VIEW_KEYS: tuple[Key, ...] = (
    Key(
        "i",
        "detail",
        "Lane detail (also Enter on a row): config, state, reason, graphs,"
        " last promotion with its gate verdict, last bench",
        "Detail",
    ),
    Key("l", "logs", "Follow the selected lane's log", "Logs"),
    Key("P", "promotion", "Show the last or running promotion, with rollback", "Promotion"),
    Key("/", "filter", "Filter lanes by name, role, variant, state or reason", "Filter"),
    Key("o", "sort_next", "Sort by the next column (or click a column header)", "Sort"),
    Key("O", "sort_reverse", "Reverse the sort order", "Reverse"),
    Key("g", "toggle_graphs", "Show or hide the latency graphs", "Graphs"),
    Key("?", "help", "Show all keys", "Keys"),
    Key("ctrl+p", "command_palette", "Command palette: every action by name", "Palette"),
    Key("q", "quit", "Quit", "Quit"),
)


def all_keys() -> tuple[Key, ...]:
    """Every key of the dashboard: actions first, then views."""
    actions = tuple(
        Key(ACTION_KEYS[a], f"act('{a.value}')", f"{ACTION_TITLES[a]}: {ACTION_HELP[a]}")
        for a in Action
    )
    return actions + VIEW_KEYS


ACTION_HELP: dict[Action, str] = {
    Action.PROMOTE: "make the selected candidate its role's active lane (in place or blue/green)",
    Action.ROLLBACK: "give the selected lane's role back the lane it had before its last promotion",
    Action.START: "start the lane (routed if it is its role's active lane)",
    Action.STOP: "stop the lane (its role has no lane if it is active)",
    Action.RESTART: "stop and start the lane",
    Action.DRAIN: "route no new requests to the lane; in-flight ones finish",
    Action.RESET: "clear a failed lane's crash-loop state so it may start again",
    Action.RELOAD: "re-read the configuration and apply it",
}
"""What each action does, for help, the man page and the command palette."""


@dataclass(frozen=True)
class Impact:
    """What confirming an action will do, for the confirmation dialog."""

    title: str
    lines: tuple[str, ...]
    """Plain sentences: what changes, for whom, what is lost."""
    disruptive: bool
    """Traffic of a role is interrupted or moved: the confirm button is styled as a warning."""


def _lane(frame: StatsFrame | None, name: str | None) -> LaneInfo | None:
    if frame is None or name is None:
        return None
    return next((lane for lane in frame.lanes if lane.name == name), None)


def _in_flight(lane: LaneInfo | None) -> int:
    return 0 if lane is None or lane.stats is None else lane.stats.in_flight


def _flight(lane: LaneInfo) -> str:
    n = _in_flight(lane)
    return f"{n} request{'s' if n != 1 else ''} in flight on {lane.name}"


def impact(action: Action, frame: StatsFrame | None, lane_name: str | None) -> Impact:
    """The confirmation text of ``action`` on ``lane_name`` given the live ``frame``."""
    title = ACTION_TITLES[action]
    if action is Action.RELOAD:
        return Impact(title, _reload_lines(frame), True)
    lane = _lane(frame, lane_name)
    if lane is None:
        return Impact(title, (f"lane {lane_name or '?'} is not known to qwend right now",), False)
    if action is Action.PROMOTE:
        return Impact(f"{title} {lane.name}", _promote_lines(frame, lane), True)
    if action is Action.ROLLBACK:
        return Impact(f"{title} {lane.role}", _rollback_lines(frame, lane), True)
    return _lane_impact(action, lane)


def _lane_impact(action: Action, lane: LaneInfo) -> Impact:
    title = f"{ACTION_TITLES[action]} {lane.name}"
    serving = lane.active and lane.state in ("ready", "unhealthy", "draining")
    what = f"{lane.name} is the active lane of role {lane.role}"
    consequence = {
        Action.STOP: (
            f"{what}: role {lane.role} loses its lane;"
            " its requests go to another role's lane or fail.",
            f"{_flight(lane)}: drained first (up to the drain timeout), then cut.",
        ),
        Action.RESTART: (
            f"{what}: role {lane.role} has no lane until {lane.name} is ready again.",
            f"{_flight(lane)}: drained first (up to the drain timeout), then cut.",
        ),
        Action.DRAIN: (
            f"{what}: new requests of role {lane.role} go elsewhere.",
            f"{_flight(lane)} may finish.",
        ),
    }.get(action)
    if consequence is not None:
        if serving:
            return Impact(title, consequence, True)
        return Impact(title, (f"{lane.name} serves no traffic ({lane.state}).",), False)
    if action is Action.START:
        routed = "it is routed once ready" if lane.active else "it stays unrouted (candidate)"
        return Impact(title, (f"{lane.name} starts on NPUs {_npus(lane)}; {routed}.",), False)
    # RESET
    after = "qwend may start it again" if lane.active else "it stays stopped"
    reason = f" ({lane.reason})" if lane.reason else ""
    return Impact(title, (f"clears {lane.name}'s crash-loop state{reason}; {after}.",), lane.active)


def _npus(lane: LaneInfo) -> str:
    return lane.npus_text


def _promote_lines(frame: StatsFrame | None, lane: LaneInfo) -> tuple[str, ...]:
    if lane.active:
        return (f"{lane.name} is already the active lane of role {lane.role}.",)
    incumbent = _lane(frame, (frame.active if frame else {}).get(lane.role))
    if incumbent is None:
        return (f"role {lane.role} has no active lane; {lane.name} starts and takes it.",)
    shared = set(lane.npus) & set(incumbent.npus) or lane.port == incumbent.port
    if shared:
        return (
            f"in place: {lane.name} shares NPUs {_npus(incumbent)} with {incumbent.name}.",
            f"role {lane.role} has NO lane from the moment {incumbent.name} is drained"
            f" and stopped until {lane.name} is ready.",
            f"{_flight(incumbent)} will be drained first.",
            "qwend rolls back to the incumbent if the candidate fails readiness.",
        )
    return (
        f"blue/green: {lane.name} starts on NPUs {_npus(lane)} while {incumbent.name} serves.",
        f"role {lane.role} switches from {incumbent.name} to {lane.name} once it is ready;"
        f" then {incumbent.name} drains ({_flight(incumbent)}) and stops.",
        "qwend rolls back to the incumbent if the candidate fails readiness.",
    )


def _rollback_lines(frame: StatsFrame | None, lane: LaneInfo) -> tuple[str, ...]:
    current = _lane(frame, (frame.active if frame else {}).get(lane.role))
    now = f"{current.name} ({_flight(current)})" if current else "no lane"
    return (
        f"role {lane.role} goes back to the lane it had before its last promotion.",
        f"it is served by {now} now; that lane is replaced.",
    )


def _reload_lines(frame: StatsFrame | None) -> tuple[str, ...]:
    flying = sum(_in_flight(lane) for lane in frame.lanes) if frame else 0
    return (
        "qwend re-reads its configuration; lanes whose definition changed restart,"
        " removed lanes stop, new ones start.",
        f"{flying} request{'s' if flying != 1 else ''} in flight across all lanes now;"
        " a refused configuration changes nothing.",
    )


def lane_actions(lane: LaneInfo | None) -> Sequence[Action]:
    """Actions offered on ``lane`` in the command palette, the likely ones first."""
    if lane is None:
        return (Action.RELOAD,)
    first = [Action.PROMOTE] if not lane.active else [Action.ROLLBACK]
    rest = [a for a in Action if a not in first]
    return (*first, *rest)
