"""Pure view-model for the dashboard: protocol messages in, table cells out.

Kept free of Textual so it is tested without a terminal and so the core of
the TUI runs without the UI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qwend.api.messages import LaneInfo, PromotionAccepted, StatusResponse
from qwend.api.stats import StatsFrame
from qwend.text import duration

LANE_COLUMNS = (
    "lane",
    "state",
    "role",
    "in-flight",
    "ttft p50",
    "e2e p95",
    "tok/s",
    "reason",
    "variant",
    "npus",
    "pid",
    "port",
    "up",
    "restarts",
    "breaker",
)
"""Most telling first: at 80 columns the lane's state and latency are in view."""

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

REASON_WIDTH = 36
"""Longest reason shown in the table; the lane detail has the whole text."""

SortKey = tuple[int, float, str]
"""(missing last, number, text): comparable across every column."""


@dataclass(frozen=True)
class LaneRow:
    """One row of the lanes table."""

    key: str
    """The lane name: the row key, stable across refreshes."""
    cells: tuple[str, ...]
    state_style: str
    sort_keys: tuple[SortKey, ...] = ()
    """One per column, in ``LANE_COLUMNS`` order."""


def latency(ms: float | None) -> str:
    """A latency that cannot be misread: ``412 ms``, ``3.19 s``, ``10.3 s``, ``1m03s``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f} s"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return duration(ms / 1000)


def reason(lane: LaneInfo) -> str:
    """Why the lane is not simply fine: qwend's last error, the state's reason, the last exit."""
    if lane.last_error:
        text = lane.last_error
    elif lane.reason:
        text = lane.reason
    elif lane.degraded:
        text = f"degraded: {lane.degraded}"
    elif lane.state != "ready" and lane.last_exit:
        text = f"last exit: {lane.last_exit}"
    else:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"


def _num(value: float | None) -> SortKey:
    return (1, 0.0, "") if value is None else (0, float(value), "")


def _text(value: str) -> SortKey:
    return (1 if not value or value == "-" else 0, 0.0, value.lower())


def lane_row(lane: LaneInfo, now: float | None = None) -> LaneRow:
    """Cells for one lane, in ``LANE_COLUMNS`` order; ``now`` gives uptime from ``started_at``."""
    stats = lane.stats
    role = (
        lane.role + (" *" if lane.active else "") + (f" [{lane.kv_role}]" if lane.kv_role else "")
    )
    state = lane.state + (" (degraded)" if lane.degraded else "")
    uptime = lane.uptime_s
    if uptime is None and now is not None and lane.started_at is not None:
        uptime = max(0.0, now - lane.started_at)
    ttft = None if stats is None else stats.ttft_p50_ms
    e2e = None if stats is None else stats.e2e_p95_ms
    toks = None if stats is None else stats.tokens_per_s
    why = reason(lane)
    breaker = "-" if stats is None else (stats.breaker or "-")
    by_column: dict[str, tuple[str, SortKey]] = {
        "lane": (lane.name, _text(lane.name)),
        "state": (state, _text(state)),
        "role": (role, _text(role)),
        "in-flight": (
            "-" if stats is None else str(stats.in_flight),
            _num(None if stats is None else stats.in_flight),
        ),
        "ttft p50": (latency(ttft), _num(ttft)),
        "e2e p95": (latency(e2e), _num(e2e)),
        "tok/s": ("-" if toks is None else f"{toks:.1f}", _num(toks)),
        "reason": (why or "-", _text(why)),
        "variant": (lane.variant, _text(lane.variant)),
        "npus": (lane.npus_text, _num(min(lane.npus, default=None))),
        "pid": (lane.pid_text, _num(lane.pid)),
        "port": (str(lane.port), _num(lane.port)),
        "up": (duration(uptime), _num(uptime)),
        "restarts": (str(lane.restarts), _num(lane.restarts)),
        "breaker": (breaker, _text(breaker)),
    }
    cells = tuple(by_column[c][0] for c in LANE_COLUMNS)
    keys = tuple(by_column[c][1] for c in LANE_COLUMNS)
    return LaneRow(lane.name, cells, STATE_STYLES.get(lane.state, ""), keys)


def lane_rows(lanes: Sequence[LaneInfo], now: float | None = None) -> list[LaneRow]:
    """Rows ordered as the daemon lists lanes."""
    return [lane_row(lane, now) for lane in lanes]


def sort_rows(rows: Sequence[LaneRow], column: str | None, reverse: bool = False) -> list[LaneRow]:
    """``rows`` by ``column`` (the daemon's order when None); missing values always last."""
    if column is None:
        return list(reversed(rows)) if reverse else list(rows)
    index = LANE_COLUMNS.index(column)
    present = [r for r in rows if r.sort_keys[index][0] == 0]
    missing = [r for r in rows if r.sort_keys[index][0] != 0]
    present.sort(key=lambda r: r.key)  # ties stay in name order either way (the sort is stable)
    present.sort(key=lambda r: r.sort_keys[index], reverse=reverse)
    return present + missing


def filter_rows(rows: Sequence[LaneRow], text: str) -> list[LaneRow]:
    """Rows whose name, role, variant, state or reason contains every word of ``text``."""
    words = text.lower().split()
    if not words:
        return list(rows)
    searched = [LANE_COLUMNS.index(c) for c in ("lane", "role", "variant", "state", "reason")]
    out = []
    for row in rows:
        haystack = " ".join(row.cells[i] for i in searched).lower()
        if all(word in haystack for word in words):
            out.append(row)
    return out


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


def frame_summary(status: StatusResponse | None, frame: StatsFrame) -> str:
    """The summary line from the live frame (version and policy from the last status)."""
    ready = sum(1 for lane in frame.lanes if lane.state == "ready")
    active = sum(1 for lane in frame.lanes if lane.active)
    flying = sum(lane.stats.in_flight for lane in frame.lanes if lane.stats is not None)
    parts = []
    if status is not None:
        parts += [f"qwend {status.daemon.version}", f"pid {status.daemon.pid}"]
    parts += [
        f"up {duration(max(0.0, frame.at - frame.started_at))}",
        f"{ready}/{len(frame.lanes)} lanes ready ({active} active)",
        f"{flying} in flight",
    ]
    policy = _router_field(status.router if status else None, "policy")
    if policy:
        parts.append(f"policy {policy}")
    if status is not None and status.daemon.config_errors:
        parts.append(f"last reload rejected: {len(status.daemon.config_errors)} error(s)")
    return "  ·  ".join(parts)


def roles_line(status: StatusResponse) -> str:
    """``role → lane`` for every role."""
    if not status.active:
        return "no roles configured"
    return "   ".join(f"{role} → {lane}" for role, lane in sorted(status.active.items()))


@dataclass(frozen=True)
class RoleLine:
    """One role of the role → lane map."""

    role: str
    lane: str
    state: str
    promotion: PromotionAccepted | None = None
    """A promotion or rollback of this role in progress."""


def role_lines(frame: StatsFrame) -> list[RoleLine]:
    """Every role with its active lane, its state, and the promotion moving it, if any."""
    states = {lane.name: lane.state for lane in frame.lanes}
    roles = sorted({lane.role for lane in frame.lanes} | set(frame.active))
    running = {p.role: p for p in frame.promotions}
    out = []
    for role in roles:
        lane = frame.active.get(role, "")
        out.append(RoleLine(role, lane, states.get(lane, "none"), running.get(role)))
    return out


def _router_field(router: Mapping[str, Any] | None, key: str) -> str:
    if not router:
        return ""
    value = router.get(key)
    return "" if value is None else str(value)
