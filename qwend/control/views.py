"""Turn the daemon's live objects into control protocol messages.

Lanes come as the supervisor's ``LaneSnapshot``; the router's and the monitor's
snapshots are read by attribute (their documented contracts), so the test doubles
of the control API need not build them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from qwend.api.messages import GroupInfo, GroupMember, LaneInfo, LaneStats
from qwend.supervisor.group import GroupView
from qwend.supervisor.supervisor import LaneSnapshot


def _ms(seconds: object) -> float | None:
    return round(seconds * 1000.0, 1) if isinstance(seconds, int | float) else None


def lane_stats_from_router(snapshot: object | None) -> dict[str, LaneStats]:
    """Per-lane ``LaneStats`` from a ``qwend.routing.snapshot.RouterSnapshot`` (empty when None)."""
    if snapshot is None:
        return {}
    result: dict[str, LaneStats] = {}
    for lane in getattr(snapshot, "lanes", ()):
        latency = getattr(lane, "latency", None)
        ttft = getattr(latency, "ttft", None)
        itl = getattr(latency, "itl", None)
        e2e = getattr(latency, "e2e", None)
        result[str(lane.name)] = LaneStats(
            in_flight=int(getattr(lane, "in_flight", 0)),
            requests=int(getattr(lane, "requests", 0)),
            errors=int(getattr(lane, "failures", 0)),
            ttft_p50_ms=_ms(getattr(ttft, "p50", None)),
            ttft_p95_ms=_ms(getattr(ttft, "p95", None)),
            itl_p50_ms=_ms(getattr(itl, "p50", None)),
            e2e_p50_ms=_ms(getattr(e2e, "p50", None)),
            e2e_p95_ms=_ms(getattr(e2e, "p95", None)),
            tokens_per_s=float(getattr(latency, "tokens_per_s", 0.0) or 0.0),
            breaker=str(getattr(lane, "breaker", "")),
        )
    return result


def router_dict(snapshot: object | None) -> dict[str, Any] | None:
    """The router snapshot as JSON (its own ``to_dict``)."""
    if snapshot is None:
        return None
    to_dict: Callable[[], dict[str, Any]] | None = getattr(snapshot, "to_dict", None)
    return to_dict() if to_dict is not None else None


def degraded_lanes(view: object | None) -> Mapping[str, str]:
    """Lane -> NPU problem from the monitor's ``NpuView`` (empty when unknown)."""
    value = getattr(view, "degraded", None)
    return value if isinstance(value, Mapping) else {}


def lane_info(
    snap: LaneSnapshot,
    stats: Mapping[str, LaneStats],
    degraded: Mapping[str, str],
    now: float | None = None,
) -> LaneInfo:
    """One ``LaneInfo`` from a supervisor snapshot plus live stats."""
    now = time.time() if now is None else now
    started = snap.started_at
    return LaneInfo(
        name=snap.name,
        role=snap.role,
        variant=snap.variant,
        state=snap.state.value,
        active=snap.active,
        standby=snap.standby,
        accepting=snap.accepting,
        model=snap.model,
        served_model=snap.served_model,
        kv_role=snap.kv_role,
        pid=snap.pid,
        port=snap.port,
        npus=tuple(snap.npus),
        started_at=started,
        uptime_s=round(now - started, 1) if started is not None else None,
        restarts=snap.restarts,
        last_exit=snap.last_exit,
        reason=snap.reason,
        last_error=snap.last_error,
        log_tail=snap.failure_log,
        degraded=degraded.get(snap.name),
        warnings=tuple(snap.warnings),
        stats=stats.get(snap.name),
        url=snap.url,
        group=group_info(snap.group),
        runs_on=snap.runs_on,
    )


def group_info(view: GroupView | None) -> GroupInfo | None:
    """The API's view of a lane group."""
    if view is None:
        return None
    return GroupInfo(
        leader=view.leader,
        state=view.state.value if view.state is not None else "",
        reason=view.reason,
        restarts=view.restarts,
        members=tuple(
            GroupMember(host, status.value if status is not None else "")
            for host, status in view.members
        ),
    )
