"""What the control API needs from the daemon, and the state it keeps itself."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qwend.api.messages import ConfigIssueInfo, DaemonInfo, LaneInfo, ReloadResponse
from qwend.broadcast import Subscription
from qwend.cluster.peers import Peers
from qwend.control.views import (
    degraded_lanes,
    lane_info,
    lane_stats_from_router,
)
from qwend.errors import ConfigError
from qwend.logs import get_logger
from qwend.promotion.promoter import Promoter
from qwend.promotion.run import SupervisorLike
from qwend.supervisor.reload import ReloadReport
from qwend.supervisor.supervisor import LaneEvent, LaneSnapshot

log = get_logger("control")


class ControlSupervisor(SupervisorLike, Protocol):
    """The methods of ``qwend.supervisor.supervisor.Supervisor`` the control API uses."""

    def snapshots(self) -> Sequence[LaneSnapshot]: ...
    def subscribe(self) -> Subscription[LaneEvent]: ...
    async def restart_lane(self, name: str) -> None: ...
    async def drain_wait(self, name: str) -> None: ...
    def log_tail(self, name: str, n: int, previous: bool = False) -> list[str]: ...
    def follow_log(self, name: str) -> AsyncIterator[str]: ...


class RouterStats(Protocol):
    """The router's ``stats_snapshot()`` (a ``qwend.routing.snapshot.RouterSnapshot``)."""

    def stats_snapshot(self) -> Any: ...


class MonitorView(Protocol):
    """The NPU monitor's ``view()`` (a ``NpuView``)."""

    def view(self) -> Any: ...


ReloadCallback = Callable[[], Awaitable[ReloadReport]]
"""Reloads the configuration: returns the supervisor's ``ReloadReport`` or raises ConfigError."""
NpuRenderer = Callable[[Any], tuple[dict[str, Any], str]]
"""NpuView -> (JSON-able dict, human table)."""


@dataclass
class ControlContext:
    """Everything the control handlers share; stored under ``CONTROL_KEY``."""

    supervisor: ControlSupervisor
    promoter: Promoter
    router: RouterStats | None = None
    monitor: MonitorView | None = None
    reload_cb: ReloadCallback | None = None
    version: str = ""
    config_path: str = ""
    control_socket: str = ""
    router_url: str = ""
    started_at: float = field(default_factory=time.time)
    warnings: Callable[[], Sequence[str]] = tuple
    """Daemon-level warnings to show in status (e.g. an ignored corrupt state file)."""
    npu_renderer: NpuRenderer | None = None
    stats_interval_s: float = 2.0
    config_errors: tuple[ConfigIssueInfo, ...] = ()
    """Issues of the last failed reload; cleared by a successful one."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at shutdown so streaming responses end promptly."""
    peers: Peers | None = None
    """The links to ``[[peers]]`` (None: this host has none): cluster view, forwarding."""

    def daemon_info(self) -> DaemonInfo:
        now = time.time()
        return DaemonInfo(
            version=self.version,
            pid=os.getpid(),
            started_at=self.started_at,
            uptime_s=round(now - self.started_at, 1),
            config_path=self.config_path,
            control_socket=self.control_socket,
            router_url=self.router_url,
            config_errors=self.config_errors,
            peers=self.peers.names if self.peers is not None else (),
        )

    def router_snapshot(self) -> Any:
        if self.router is None:
            return None
        try:
            return self.router.stats_snapshot()
        except Exception as exc:  # a stats bug must not take status down
            log.error("router stats failed", error=str(exc))
            return None

    def monitor_view(self) -> Any:
        if self.monitor is None:
            return None
        try:
            return self.monitor.view()
        except Exception as exc:
            log.error("npu view failed", error=str(exc))
            return None

    def lanes(self, router_snapshot: Any = None) -> tuple[LaneInfo, ...]:
        stats = lane_stats_from_router(router_snapshot)
        degraded = degraded_lanes(self.monitor_view())
        now = time.time()
        return tuple(lane_info(s, stats, degraded, now) for s in self.supervisor.snapshots())

    def lane(self, name: str) -> LaneInfo:
        stats = lane_stats_from_router(self.router_snapshot())
        degraded = degraded_lanes(self.monitor_view())
        return lane_info(self.supervisor.snapshot(name), stats, degraded)

    def has_lane(self, name: str) -> bool:
        return any(lane.name == name for lane in self.supervisor.config.lanes)

    async def reload(self) -> ReloadResponse:
        """Run the daemon's reload; remember config errors for status. Also for SIGHUP."""
        if self.reload_cb is None:
            return ReloadResponse(
                ok=False, errors=(ConfigIssueInfo("", "", "this daemon cannot reload"),)
            )
        try:
            report = await self.reload_cb()
        except ConfigError as exc:
            self.config_errors = tuple(
                ConfigIssueInfo(i.file, i.key, i.message) for i in exc.issues
            )
            log.warning("reload refused", errors=len(self.config_errors))
            return ReloadResponse(ok=False, errors=self.config_errors)
        self.config_errors = ()
        return ReloadResponse(
            ok=True,
            restarted=report.restarted,
            started=report.started,
            stopped=report.stopped,
            unchanged=report.unchanged,
            added=report.added,
            removed=report.stopped,
        )
