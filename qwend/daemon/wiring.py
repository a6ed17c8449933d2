"""The daemon's services: built once at start-up, wired to each other, started by nobody here.

The state store gives the active lanes to start with; the router reads the lane
table the supervisor publishes and is its traffic gate; the NPU monitor maps the
supervisor's lane processes to NPUs and is its pre-start check; the promoter
drives the supervisor; the control API serves them all. ``qwend.daemon.lifecycle``
starts, serves and stops them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from qwend import __version__
from qwend.cluster.peers import Peers
from qwend.config.model import AccessLogConfig, Config, LaneConfig
from qwend.control.app import make_control_app
from qwend.daemon.groups import LaneGroups, PeerMemberLink
from qwend.daemon.metrics import metrics_sources
from qwend.daemon.systemd import lanes_survive
from qwend.logs import get_logger
from qwend.npu.monitor import NpuMonitor
from qwend.promotion.promoter import Promoter
from qwend.promotion.state import StateStore, reconcile_active
from qwend.public.keyfile import KeySet
from qwend.public.keys import ApiKeys
from qwend.router.accesslog import make_access_log
from qwend.router.app import make_router_app
from qwend.router.metrics import METRICS_SOURCES_KEY
from qwend.router.router import ROUTER_KEY, Router
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.reload import ReloadReport
from qwend.supervisor.supervisor import Supervisor

log = get_logger("daemon")


@dataclass(frozen=True)
class Services:
    """The daemon's long-lived objects."""

    store: StateStore
    """The persisted active lanes and promotion history."""
    router_app: web.Application
    """The router's aiohttp application (the listeners serve it)."""
    router: Router
    monitor: NpuMonitor
    supervisor: Supervisor
    promoter: Promoter
    warnings: tuple[str, ...]
    """Start-up warnings kept for ``qwenctl status`` (a corrupt state file, stale choices)."""
    api_keys: ApiKeys
    """The one key holder of every public endpoint (a reload swaps its key set)."""
    groups: LaneGroups
    """The lane groups this host leads or follows (started after the lanes)."""
    peers: Peers | None = None
    """The links to ``[[peers]]`` (None: none configured)."""


def build_services(
    config: Config, *, extra_env: Mapping[str, str], keys: KeySet | None
) -> Services:
    """Every service, wired; nothing is started yet. ``keys``: those of api_keys_file."""
    store = StateStore(config.daemon.state_dir)
    active, warnings = _restore_active(store, config)
    table = LaneTable()
    router_app = make_router_app(
        config.router, table, body_timeout_s=config.connections.body_timeout_s
    )
    router = router_app[ROUTER_KEY]
    # The monitor and the supervisor use each other (lane processes to NPUs; the NPU
    # check before a lane starts). Neither calls the other before the daemon starts
    # them, by when both exist.
    supervisor: Supervisor
    monitor = NpuMonitor(
        config.monitor, lambda: supervisor.lane_pids(), lambda: supervisor.lane_npus()
    )
    supervisor = Supervisor(
        config,
        table,
        active=active,
        traffic=router,
        pre_start=_npu_pre_start(monitor, lambda: supervisor) if monitor.available else None,
        extra_env=extra_env,
        survive=lanes_survive(config.daemon.lanes_survive_restart, os.environ, os.getppid()),
    )
    promoter = Promoter(
        supervisor, router, store, monitor, drain_timeout_s=config.daemon.drain_timeout_s
    )
    router_app[METRICS_SOURCES_KEY].extend(metrics_sources(supervisor, monitor.view, promoter))
    apply_access_log(router, None, config.access_log)
    api_keys = ApiKeys()
    api_keys.swap(keys)  # as a reload does: logs what is in force
    # A peer's unusable token or TLS file is a start-up error (CredentialError) naming it.
    peers = Peers.from_config(config) if config.peers else None
    # A lane group's members on other hosts are reached over the peer links; without peers
    # there is none and LaneGroups says so for each group lane.
    groups = LaneGroups(supervisor, PeerMemberLink(peers.client) if peers is not None else None)
    return Services(
        store, router_app, router, monitor, supervisor, promoter, warnings, api_keys, groups, peers
    )


def apply_access_log(router: Router, old: AccessLogConfig | None, new: AccessLogConfig) -> None:
    """Put ``[access_log]`` in force (at start, and on a reload that changed it)."""
    if new != old:
        router.forwarding.access.swap(make_access_log(new))
        log.info("access log", target=str(new.target), path=str(new.path))


def _restore_active(store: StateStore, config: Config) -> tuple[dict[str, str], tuple[str, ...]]:
    """The persisted active lanes the configuration allows, and warnings about the rest."""
    state, warning = store.load_or_default()
    active, stale = reconcile_active(state, config)
    warnings = (*([warning] if warning else []), *stale)
    for text in warnings:
        log.warning("startup warning", warning=text)
    return active, warnings


def _npu_pre_start(
    monitor: NpuMonitor, supervisor: Callable[[], Supervisor]
) -> Callable[[LaneConfig], Awaitable[str | None]]:
    """The supervisor's pre-start check: the lane's NPUs are released (or a warning)."""

    async def pre_start(lane: LaneConfig) -> str | None:
        warning = await monitor.pre_start(lane)
        # The check polls npu-smi; its chip name picks the Ascend env defaults of lanes.
        reading = monitor.view().reading
        lanes = supervisor()
        if lanes.chip_family is None and reading is not None and reading.npus:
            lanes.chip_family = reading.npus[0].name
            log.info("chip family for lane environments", chip=lanes.chip_family)
        return warning

    return pre_start


def control_app(
    services: Services,
    config: Config,
    *,
    config_path: Path,
    reload: Callable[[], Awaitable[ReloadReport]],
) -> web.Application:
    """The control API over the services; ``reload`` re-reads the configuration."""
    return make_control_app(
        services.supervisor,
        services.promoter,
        router=services.router,
        monitor=services.monitor,
        reload_cb=reload,
        version=__version__,
        config_path=config_path,
        control_socket=config.daemon.control_socket,
        router_url=config.router.listen.url,
        started_at=time.time(),
        warnings=lambda: services.warnings,
        peers=services.peers,
    )
