"""Pure view-model for the dashboard: protocol messages in, table cells out.

Kept free of Textual so it is tested without a terminal and so the core of
the TUI runs without the UI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qwend.api.messages import LaneInfo, StatusResponse
from qwend.text import duration, milliseconds

LANE_COLUMNS = (
    "lane",
    "role",
    "variant",
    "state",
    "pid",
    "port",
    "npus",
    "up",
    "restarts",
    "in-flight",
    "ttft p50",
    "e2e p95",
    "tok/s",
    "breaker",
)

STATE_STYLES: Mapping[str, str] = {
    "ready": "green",
    "starting": "yellow",
    "draining": "yellow",
    "stopping": "yellow",
    "backoff": "dark_orange",
    "unhealthy": "red",
    "failed": "bold red",
    "stopped": "dim",
}


@dataclass(frozen=True)
class LaneRow:
    """One row of the lanes table."""

    key: str
    """The lane name: the row key, stable across refreshes."""
    cells: tuple[str, ...]
    state_style: str


def lane_row(lane: LaneInfo) -> LaneRow:
    """Cells for one lane, in ``LANE_COLUMNS`` order."""
    stats = lane.stats
    role = lane.role + (" *" if lane.active else "")
    state = lane.state + (" (degraded)" if lane.degraded else "")
    cells = (
        lane.name,
        role,
        lane.variant,
        state,
        "-" if lane.pid is None else str(lane.pid),
        str(lane.port),
        ",".join(map(str, lane.npus)) or "-",
        duration(lane.uptime_s),
        str(lane.restarts),
        "-" if stats is None else str(stats.in_flight),
        "-" if stats is None else milliseconds(stats.ttft_p50_ms, sep=" "),
        "-" if stats is None else milliseconds(stats.e2e_p95_ms, sep=" "),
        "-" if stats is None or stats.tokens_per_s is None else f"{stats.tokens_per_s:.1f}",
        "-" if stats is None else (stats.breaker or "-"),
    )
    return LaneRow(lane.name, cells, STATE_STYLES.get(lane.state, ""))


def lane_rows(lanes: Sequence[LaneInfo]) -> list[LaneRow]:
    """Rows ordered as the daemon lists lanes."""
    return [lane_row(lane) for lane in lanes]


def summary_line(status: StatusResponse) -> str:
    """One line: daemon version, uptime, how many lanes are ready, the router policy."""
    ready = sum(1 for lane in status.lanes if lane.state == "ready")
    active = sum(1 for lane in status.lanes if lane.active)
    policy = _router_field(status.router, "policy")
    parts = [
        f"qwend {status.daemon.version}",
        f"pid {status.daemon.pid}",
        f"up {duration(status.daemon.uptime_s)}",
        f"{ready}/{len(status.lanes)} lanes ready ({active} active)",
    ]
    if policy:
        parts.append(f"policy {policy}")
    if status.daemon.config_errors:
        parts.append(f"last reload rejected: {len(status.daemon.config_errors)} error(s)")
    return "  ·  ".join(parts)


def roles_line(status: StatusResponse) -> str:
    """``role → lane`` for every role."""
    if not status.active:
        return "no roles configured"
    return "   ".join(f"{role} → {lane}" for role, lane in sorted(status.active.items()))


def _router_field(router: Mapping[str, Any] | None, key: str) -> str:
    if not router:
        return ""
    value = router.get(key)
    return "" if value is None else str(value)
