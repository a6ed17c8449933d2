"""Human rendering of control responses for qwenctl (pure: strings in, strings out)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from qwend.api.describe import gate_line, quote_log
from qwend.api.messages import (
    ClusterResponse,
    LaneActionResult,
    LaneInfo,
    LanesResponse,
    PromotionRecord,
    ReloadResponse,
    StatusResponse,
)
from qwend.text import duration, milliseconds, table


def _lane_row(lane: LaneInfo) -> list[str]:
    role = lane.role + ("*" if lane.active else "") + (f" [{lane.kv_role}]" if lane.kv_role else "")
    state = lane.state + (" (degraded)" if lane.degraded else "")
    stats = lane.stats
    note = (
        lane.degraded
        or lane.reason
        or lane.last_error
        or (lane.warnings[0] if lane.warnings else "")
    )
    return [
        lane.name,
        role,
        lane.variant,
        state,
        lane.pid_text,
        str(lane.port),
        lane.npus_text,
        duration(lane.uptime_s),
        str(lane.restarts),
        lane.last_exit or "-",
        str(stats.in_flight) if stats else "-",
        milliseconds(stats.ttft_p50_ms) if stats else "-",
        milliseconds(stats.e2e_p50_ms) if stats else "-",
        note,
    ]


LANE_HEADERS = (
    "LANE",
    "ROLE",
    "VARIANT",
    "STATE",
    "PID",
    "PORT",
    "NPUS",
    "UPTIME",
    "RESTARTS",
    "LAST EXIT",
    "IN FLIGHT",
    "TTFT P50",
    "E2E P50",
    "NOTE",
)


def render_lanes(lanes: LanesResponse | Sequence[LaneInfo]) -> str:
    """The lane table; ``*`` after the role marks the active lane."""
    items = lanes.lanes if isinstance(lanes, LanesResponse) else lanes
    return table(LANE_HEADERS, [_lane_row(lane) for lane in items]) + "\n"


def _record_line(record: PromotionRecord) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.finished_at))
    who = (
        f" by {record.requested_by.user or record.requested_by.uid}" if record.requested_by else ""
    )
    why = f" ({record.reason})" if record.reason else ""
    kind = "rollback" if record.kind == "rollback" else "promotion"
    return (
        f"{when}  {kind} {record.id}: {record.role} {record.from_lane or '-'} -> {record.to_lane}"
        f" {record.outcome.value}{why}{who}"
    )


def render_status(status: StatusResponse) -> str:
    """Daemon summary, active lanes, the lane table, promotions, warnings."""
    d = status.daemon
    out = [
        f"qwend {d.version}  pid {d.pid}  up {duration(d.uptime_s)}  config {d.config_path or '-'}",
    ]
    if d.router_url:
        out.append(f"router {d.router_url}")
    roles = "  ".join(f"{role}={lane}" for role, lane in status.active.items())
    out.append(f"active: {roles or 'none'}")
    out.append("")
    out.append(render_lanes(status.lanes).rstrip("\n"))
    for running in status.running_promotions:
        out.append(
            f"promotion running {running.id}: {running.role} {running.from_lane or '-'}"
            f" -> {running.to_lane} ({running.mode.value.replace('_', ' ')})"
        )
    if status.last_promotions:
        out.append("")
        out.append("last promotions:")
        for r in status.last_promotions[-3:]:
            out.append("  " + _record_line(r))
            if r.gate is not None:
                out.append("    " + gate_line(r.gate))
    if d.config_errors:
        out.append("")
        out.append("last reload failed; still running the previous configuration:")
        out.extend(f"  {issue}" for issue in d.config_errors)
    groups = [lane for lane in status.lanes if lane.group is not None]
    if groups:
        out.append("")
        for lane in groups:
            assert lane.group is not None
            engines = [other.name for other in status.lanes if other.runs_on == lane.name]
            runs = f"; {', '.join(engines)} run{'s' if len(engines) == 1 else ''} on it"
            out.append(f"group {lane.name}: {lane.group.line()}{runs if engines else ''}")
    for lane in status.lanes:
        if lane.log_tail:
            out.append(quote_log(lane.name, lane.log_tail).removeprefix("\n"))
    for warning in status.warnings:
        out.append(f"warning: {warning}")
    return "\n".join(out) + "\n"


def render_cluster(view: ClusterResponse) -> str:
    """One line per host (this one first), then every host's lanes in one table."""
    out = []
    rows: list[list[str]] = []
    for host in view.hosts:
        label = host.name + (" (this host)" if host.local else "")
        status = host.status
        if status is None:
            out.append(f"{label}: unreachable: {host.error}")
            continue
        d = status.daemon
        roles = "  ".join(f"{role}={lane}" for role, lane in status.active.items())
        took = "" if host.local else f"  answered in {milliseconds(host.elapsed_ms)}"
        out.append(
            f"{label}: qwend {d.version}  pid {d.pid}  up {duration(d.uptime_s)}"
            f"  active: {roles or 'none'}{took}"
        )
        rows.extend([host.name, *_lane_row(lane)] for lane in status.lanes)
        out.extend(
            f"  promotion running {r.id}: {r.role} {r.from_lane or '-'} -> {r.to_lane}"
            for r in status.running_promotions
        )
        out.extend(f"  warning: {w}" for w in status.warnings)
    out.append("")
    out.append(table(("HOST", *LANE_HEADERS), rows))
    return "\n".join(out) + "\n"


def render_action(result: LaneActionResult) -> str:
    lane = result.lane
    pid = f" pid {lane.pid}" if lane.pid is not None else ""
    return f"{lane.name}: {result.action.value} -> {lane.state}{pid}\n"


def render_reload(reload: ReloadResponse) -> str:
    """Applied changes, or (for stderr) the config issues that stopped the reload."""
    if not reload.ok:
        lines = ["configuration not reloaded; still running the previous one:"]
        lines.extend(f"  {issue}" for issue in reload.errors)
        return "\n".join(lines) + "\n"
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("added", reload.added),
            ("removed", reload.removed or reload.stopped),
            ("restarted", reload.restarted),
            ("started", reload.started),
            ("unchanged", reload.unchanged),
        )
        if names
    ]
    return "configuration reloaded: " + ("; ".join(parts) or "no lanes") + "\n"
