"""The supervisor: owns every lane, publishes the routable set, reloads, shuts down.

Per lane state and life live in ``qwend.supervisor.runner.LaneRunner``; this module
holds the set of lanes, the active lane per role, the lane table the router
reads (replaced on every change), lane events, and carries out reloads (planned by
``qwend.supervisor.reload``) and the shutdown.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import aiohttp

from qwend.broadcast import Broadcast, Subscription
from qwend.config.model import Config, LaneConfig
from qwend.errors import LaneError
from qwend.logs import get_logger
from qwend.routing.lanetable import LaneTable, RoutableLane, TrafficGate
from qwend.supervisor.adoption import LaneRecord, Verdict, decide
from qwend.supervisor.detached import DetachedLaneProcess, LaneRegistry, proc_facts, stop_group
from qwend.supervisor.group import GroupView
from qwend.supervisor.guard import OrphanGuard
from qwend.supervisor.output import MIB, read_log_tail
from qwend.supervisor.preflight import preflight
from qwend.supervisor.process import lane_environment
from qwend.supervisor.reload import (
    ActiveLanes,
    ReloadPlan,
    ReloadReport,
    plan_reload,
    resolve_active,
)
from qwend.supervisor.runner import LaneContext, LaneRunner
from qwend.supervisor.states import CLAIMING, ROUTABLE, LaneState


class GroupControl(Protocol):
    """What runs this host's lane groups (the daemon's ``LaneGroups``)."""

    async def start_group(self, lane: str) -> None:
        """Start the group whose leader lane is ``lane``."""
        ...

    async def stop_group(self, lane: str, reason: str) -> None:
        """Stop every member of the group whose leader lane is ``lane``."""
        ...

    def group_view(self, lane: str) -> GroupView | None:
        """The group of member lane ``lane`` as this host sees it."""
        ...


EVENT_BUFFER = 1000
"""Lane events a subscriber may fall behind by before it loses the oldest."""


@dataclass(frozen=True)
class LaneSnapshot:
    """One lane as operators see it."""

    name: str
    role: str
    variant: str
    model: str
    standby: bool
    """As configured."""
    active: bool
    """The current active lane of its role."""
    state: LaneState
    pid: int | None
    port: int
    npus: tuple[int, ...]
    started_at: float | None
    """Epoch seconds of the current process's start."""
    restarts: int
    """Automatic restarts since qwend started."""
    last_exit: str | None
    """``exit 1`` / ``signal SIGKILL`` of the previous process."""
    reason: str | None
    """Why the lane is failed, unhealthy or in backoff."""
    accepting: bool
    """Routable right now (ready, active, not draining)."""
    warnings: tuple[str, ...]
    kv_role: str = ""
    """``prefill`` or ``decode`` for a half of a prefill/decode pair; empty: whole requests."""
    last_error: str | None = None
    """qwend's own last error supervising the lane (retried); cleared when it is ready."""
    failure_log: tuple[str, ...] = ()
    """The last lines of the lane's output when it last failed to start or crashed;
    cleared when it is ready."""
    served_model: str = ""
    """The ``model`` the lane's backend expects (its ``served_model``, else ``model``)."""
    url: str = ""
    """A remote lane's url (it has no PID here); empty for a local lane."""
    runs_on: str = ""
    """The lane group this lane's engine runs on (``runs_on``); empty: none."""
    group: GroupView | None = None
    """The lane group this lane is a member of, as this host sees it."""


@dataclass(frozen=True)
class LaneEvent:
    """A lane state change, as sent to subscribers."""

    lane: str
    old: LaneState
    new: LaneState
    reason: str | None
    at: float
    """Epoch seconds."""


class Supervisor:
    """Owns the lane processes (see module docstring).

    ``active`` maps roles to the lanes to route to first (the daemon passes the
    persisted choices); a choice the configuration does not allow is dropped with a
    warning and its role gets its configured lane.
    """

    def __init__(
        self,
        config: Config,
        lane_table: LaneTable,
        *,
        active: Mapping[str, str] | None = None,
        traffic: TrafficGate | None = None,
        pre_start: Callable[[LaneConfig], Awaitable[str | None]] | None = None,
        extra_env: Mapping[str, str] | None = None,
        chip_family: str | None = None,
        survive: bool = False,
    ) -> None:
        self._config = config
        self._table = lane_table
        self.traffic = traffic
        self._pre_start = pre_start
        self._extra_env = dict(extra_env or {})
        self.chip_family = chip_family
        self._guard = OrphanGuard()
        self._guard_watch: asyncio.Task[None] | None = None
        # Always kept: lanes a previous daemon left are adopted, or stopped when lanes
        # do not survive now (``[daemon] lanes_survive_restart``, fixed for a daemon's life).
        self._registry = LaneRegistry(config.daemon.state_dir)
        self._survive = survive
        self._adopted = False
        self._session: aiohttp.ClientSession | None = None
        self._events: Broadcast[LaneEvent] = Broadcast(EVENT_BUFFER)
        self._closing = False
        self._groups: GroupControl | None = None
        self._group_ready: set[str] = set()
        """Group lanes whose whole group is up (set by the leader host's coordinator)."""
        self._held: set[str] = set()
        """Roles whose active lane is being replaced in place: requests for them wait."""
        self._log = get_logger("supervisor")
        self._runners = {lane.name: LaneRunner(lane, self._context()) for lane in config.lanes}
        self._active = self._allowed_active(resolve_active(config, active or {}))
        self._publish()

    # --- wiring -----------------------------------------------------------------

    def _allowed_active(self, resolved: ActiveLanes) -> dict[str, str]:
        for choice in resolved.dropped:
            self._log.warning(
                "active lane dropped; its role gets its configured lane",
                role=choice.role,
                lane=choice.lane,
                why="no longer configured"
                if choice.now_role is None
                else f"now serves role {choice.now_role!r}",
            )
        return dict(resolved.active)

    def _context(self) -> LaneContext:
        return LaneContext(
            log_dir=lambda: self._config.daemon.log_dir,
            log_keep=lambda: self._config.daemon.lane_log_keep,
            log_max_bytes=lambda: self._config.daemon.lane_log_max_mb * MIB,
            environment=self._environment,
            guard=self._guard,
            session=self._http,
            preflight=self._preflight,
            pre_start=self._release_wait if self._pre_start is not None else None,
            on_change=self._on_change,
            registry=self._registry if self._survive else None,
        )

    async def _release_wait(self, lane: LaneConfig) -> str | None:
        """The pre-start check (HBM released by earlier holders) on the NPUs the lane's
        processes will use here: its own, or for a lane on a group the group member's
        (its workers are that member's Ray actors, and a previous engine's let go of those
        NPUs only as they exit)."""
        assert self._pre_start is not None
        group = self._runners.get(lane.runs_on) if lane.runs_on is not None else None
        if group is not None:
            lane = replace(lane, npus=group.cfg.npus)
        return await self._pre_start(lane)

    def _environment(self, lane: LaneConfig) -> dict[str, str]:
        return lane_environment(lane, extra=self._extra_env, chip_family=self.chip_family)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No keep-alive: a restarted lane must not get a stale pooled connection.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        return self._session

    def _preflight(self, lane: LaneConfig) -> None:
        if lane.runs_on is not None and lane.runs_on not in self._group_ready:
            # Also a runner's own restart: an engine whose cluster is down waits in backoff
            # (its group's coordinator starts it afresh once the group is ready again).
            raise LaneError(self._group_not_ready(lane.name, lane.runs_on))
        claiming = [r.cfg for r in self._runners.values() if r.state in CLAIMING]
        preflight(lane, claiming)

    def _group_not_ready(self, lane: str, group: str) -> str:
        state = self._runners[group].state.value if group in self._runners else "not configured"
        return (
            f"lane {lane} runs on lane group {group}, which is not ready (its lane here is"
            f" {state}); it starts once the group is: qwenctl start {group}"
        )

    def _runner(self, name: str) -> LaneRunner:
        try:
            return self._runners[name]
        except KeyError:
            known = ", ".join(self._runners) or "none"
            raise LaneError(f"no lane named {name!r} (lanes: {known})") from None

    # --- change propagation ----------------------------------------------------

    def _on_change(
        self, runner: LaneRunner, old: LaneState, new: LaneState, reason: str | None
    ) -> None:
        self._publish()
        self._events.publish(LaneEvent(runner.name, old, new, reason, time.time()))

    def _routable(self, runner: LaneRunner) -> RoutableLane:
        cfg = runner.cfg
        active = self._active.get(cfg.role) == cfg.name
        return RoutableLane(
            name=cfg.name,
            role=cfg.role,
            variant=cfg.variant,
            base_url=cfg.base_url,
            text=cfg.capabilities.text,
            image=cfg.capabilities.image,
            active=active,
            accepting=runner.state in ROUTABLE and not self._closing and self._group_up(cfg),
            model=cfg.model,
            aliases=cfg.aliases,
            served_model=cfg.served_model,
            max_model_len=cfg.max_model_len,
            remote=cfg.remote,
            pending=active and cfg.role in self._held and not self._closing,
            kv_role=cfg.kv_role,
        )

    def _group_up(self, cfg: LaneConfig) -> bool:
        """A plain lane: True. A group's leader: while the whole group is up. A follower
        or a headless member (a Ray node): never routed."""
        if cfg.group is None:
            return True
        return not cfg.is_follower and not cfg.is_headless and cfg.name in self._group_ready

    def set_group_ready(self, name: str, ready: bool) -> None:
        """The lane group coordinator's verdict: route the leader's lane or not."""
        if ready:
            self._group_ready.add(name)
        else:
            self._group_ready.discard(name)
        self._publish()

    def runs_on(self, group: str) -> tuple[str, ...]:
        """The lanes whose engine runs on the lane group ``group`` (``runs_on``)."""
        return tuple(n for n, r in self._runners.items() if r.cfg.runs_on == group)

    async def start_dependents(self, group: str) -> None:
        """The group just became ready: start the active lanes that run on it (a crash loop
        while it was down is forgiven: the cluster under them is a new one)."""
        for name in self.runs_on(group):
            runner = self._runners[name]
            if self._active.get(runner.cfg.role) != name or self._closing:
                continue  # a standby engine is started by its promotion
            if runner.state is LaneState.FAILED:
                await runner.reset()
            elif runner.state in (LaneState.STOPPED, LaneState.BACKOFF):
                await runner.stop()  # a backoff ends: start at once, not at the next retry
                await runner.start()

    async def stop_dependents(self, group: str, *, drain: bool) -> None:
        """Stop every lane that runs on ``group`` before its members stop: ``drain`` when the
        stop was asked for (their requests finish), at once when a member was lost (the
        engine's workers are going or gone)."""
        names = [n for n in self.runs_on(group) if self._runners[n].state is not LaneState.STOPPED]
        if not names:
            return
        if drain:
            for name in names:
                await self._runners[name].drain()
            await self._drain_wait(names, self._config.daemon.drain_timeout_s)
        reason = f"lane group {group} is not ready"
        await asyncio.gather(*(self._runners[n].stop(reason) for n in names))

    def lane_state(self, name: str) -> LaneState:
        """One lane's state; LaneError for an unknown lane."""
        return self._runner(name).state

    def group_lanes(self) -> tuple[LaneConfig, ...]:
        """The members of lane groups this host runs, in configuration order."""
        return tuple(r.cfg for r in self._runners.values() if r.cfg.group is not None)

    def _publish(self) -> None:
        self._table.replace(tuple(self._routable(r) for r in self._runners.values()))

    def subscribe(self) -> Subscription[LaneEvent]:
        """Every lane state change from now on (close the subscription when done)."""
        return self._events.subscribe()

    # --- read side -------------------------------------------------------------

    @property
    def survive(self) -> bool:
        """Lanes outlive this daemon (and a restarted one re-adopts them)."""
        return self._survive

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self._config

    def active_lanes(self) -> dict[str, str]:
        """Role -> active lane name."""
        return dict(self._active)

    def snapshot(self, name: str) -> LaneSnapshot:
        """One lane's snapshot; LaneError for an unknown lane."""
        runner = self._runner(name)
        cfg = runner.cfg
        routable = self._routable(runner)
        return LaneSnapshot(
            name=cfg.name,
            role=cfg.role,
            variant=cfg.variant,
            model=cfg.model,
            served_model=cfg.backend_model,
            standby=cfg.standby,
            active=routable.active,
            state=runner.state,
            pid=runner.pid,
            port=cfg.port,
            npus=cfg.npus,
            started_at=runner.started_at,
            restarts=runner.restarts,
            last_exit=runner.last_exit,
            reason=runner.reason,
            accepting=routable.accepting and routable.active,
            warnings=runner.warnings,
            kv_role=str(cfg.kv_role or ""),
            last_error=runner.last_error,
            failure_log=runner.failure_log,
            url=cfg.remote.url if cfg.remote is not None else "",
            group=self._group_view(cfg),
            runs_on=cfg.runs_on or "",
        )

    def _group_view(self, cfg: LaneConfig) -> GroupView | None:
        if cfg.group is None:
            return None
        if self._groups is not None:
            view = self._groups.group_view(cfg.name)
            if view is not None:
                return view
        members = tuple((m, None) for m in cfg.group.members)
        return GroupView(cfg.name, cfg.group.leader, None, None, 0, members)

    def snapshots(self) -> tuple[LaneSnapshot, ...]:
        """Every lane, in configuration order."""
        return tuple(self.snapshot(name) for name in self._runners)

    def lane_pids(self) -> dict[str, int]:
        """Lane -> PID of its running process (for the NPU monitor)."""
        return {n: r.pid for n, r in self._runners.items() if r.pid is not None}

    def lane_npus(self) -> dict[str, tuple[int, ...]]:
        """Lane -> NPUs, for lanes that hold or are about to hold them (for the NPU monitor).

        A stopped standby lane shares NPUs with its incumbent; listing it would make
        the incumbent's process look foreign to it.
        """
        idle = (LaneState.STOPPED, LaneState.FAILED)
        return {n: r.cfg.npus for n, r in self._runners.items() if r.state not in idle}

    def status_line(self) -> str:
        """``2/3 lanes ready`` (+ failed count) for systemd STATUS=."""
        wanted = [r for r in self._runners.values() if r.state is not LaneState.STOPPED]
        ready = sum(r.state is LaneState.READY for r in wanted)
        failed = sum(r.state is LaneState.FAILED for r in wanted)
        line = f"{ready}/{len(wanted)} lanes ready"
        return line + (f", {failed} failed" if failed else "")

    def log_tail(self, name: str, n: int, previous: bool = False) -> list[str]:
        """The last ``n`` output lines of a lane (``previous``: of its previous start)."""
        runner = self._runner(name)
        path = self._config.daemon.log_dir / f"{name}.log"
        if previous:
            return read_log_tail(path.with_name(f"{name}.log.1"), n)
        lines = runner.ring.tail(n)
        return lines if lines else read_log_tail(path, n)

    def follow_log(self, name: str) -> Subscription[str]:
        """New output lines of a lane as they arrive (across restarts); LaneError if unknown."""
        return self._runner(name).ring.follow()

    def note_traffic_ok(self, name: str) -> None:
        """The router served a request on ``name`` successfully (skips inference probes)."""
        runner = self._runners.get(name)
        if runner is not None:
            runner.last_traffic_ok = time.monotonic()

    # --- lane actions -------------------------------------------------------------

    async def start(self) -> None:
        """Take back the lanes a previous daemon left, begin starting every active lane."""
        if self._guard_watch is None:
            self._guard_watch = asyncio.create_task(self._guard.watch(), name="orphan-guard")
        await self._adopt()
        for runner in self._runners.values():
            if runner.cfg.group is not None or runner.cfg.runs_on is not None:
                continue  # started by its group's coordinator, in the group's order
            if self._active.get(runner.cfg.role) == runner.name:
                await runner.start()

    async def _adopt(self) -> None:
        """Adopt, stop or forget each lane recorded by a previous daemon (``adoption``)."""
        if self._adopted:  # once: later records are this daemon's own lanes
            return
        self._adopted = True
        stops = []
        for record in self._registry.load():
            runner = self._runners.get(record.name)
            if runner is not None and runner.state is not LaneState.STOPPED:
                continue  # started already by this daemon; not a left-over
            lane = runner.cfg if runner is not None else None
            decision = decide(record, lane, proc_facts(record.pid), survive=self._survive)
            self._log.info(
                "lane left by a previous qwend",
                lane=record.name,
                pid=record.pid,
                verdict=decision.verdict.value,
                reason=decision.reason,
            )
            if decision.verdict is Verdict.ADOPT and runner is not None:
                proc = DetachedLaneProcess.adopt(
                    runner.cfg,
                    record,
                    log_dir=self._config.daemon.log_dir,
                    registry=self._registry,
                    ring=runner.ring,
                    log_keep=self._config.daemon.lane_log_keep,
                    log_max_bytes=self._config.daemon.lane_log_max_mb * MIB,
                )
                await runner.adopt(proc)
            elif decision.verdict is Verdict.STOP:
                stops.append(self._stop_left(record, lane))
            else:
                self._registry.drop(record.name, record.pid)
        await asyncio.gather(*stops)

    async def _stop_left(self, record: LaneRecord, lane: LaneConfig | None) -> None:
        sig, timeout = (lane.stop.signal, lane.stop.timeout_s) if lane else (signal.SIGTERM, 30.0)
        await stop_group(record.pid, sig, timeout)
        self._registry.drop(record.name, record.pid)

    def attach_groups(self, groups: GroupControl) -> None:
        """Operators' start, stop and restart of a group's leader lane act on the group."""
        self._groups = groups

    def _leads_group(self, name: str) -> GroupControl | None:
        cfg = self._runner(name).cfg
        if self._groups is None or cfg.group is None or not cfg.group.is_leader:
            return None
        return self._groups

    async def start_lane(self, name: str) -> None:
        """Start (or reset, when failed) a lane; returns once it is starting. For a group's
        leader lane: start the whole group, in its order."""
        groups = self._leads_group(name)
        if groups is not None:
            await groups.start_group(name)
            return
        await self.start_member(name)

    async def start_member(self, name: str) -> None:
        """Start (or reset) this host's lane itself, group member or not."""
        runner = self._runner(name)
        group = runner.cfg.runs_on
        if group is not None and group not in self._group_ready:
            raise LaneError(self._group_not_ready(name, group))
        if runner.state is LaneState.FAILED:
            await runner.reset()
        else:
            await runner.start()

    async def stop_lane(self, name: str) -> None:
        """Stop a lane; returns when its process group is gone. For a group's leader lane:
        stop every member of the group."""
        groups = self._leads_group(name)
        if groups is not None:
            await groups.stop_group(name, "stopped by request")
            return
        await self.stop_member(name)

    async def stop_member(self, name: str) -> None:
        """Stop this host's lane itself, group member or not."""
        await self._runner(name).stop("stopped by request")

    async def restart_lane(self, name: str) -> None:
        """Stop, then start a lane (a group's leader lane: the whole group)."""
        groups = self._leads_group(name)
        if groups is not None:
            await groups.stop_group(name, "restarting")
            await groups.start_group(name)
            return
        runner = self._runner(name)
        await runner.stop("restarting")
        await runner.start()

    async def drain_lane(self, name: str) -> None:
        """Stop routing new requests to a lane (in-flight ones finish)."""
        await self._runner(name).drain()

    async def drain_wait(self, name: str) -> None:
        """Drain a lane, then wait for its in-flight requests: at most [daemon] drain_timeout_s.

        Run before a stop or restart asked for by an operator, so it costs no request.
        """
        runner = self._runner(name)
        await runner.drain()
        if runner.state is LaneState.DRAINING:
            await self._drain_wait([name], self._config.daemon.drain_timeout_s)

    async def reset_lane(self, name: str) -> None:
        """failed -> stopped -> starting."""
        await self._runner(name).reset()

    async def wait_ready(self, name: str, timeout: float) -> None:
        """Wait until the lane is ready; LaneError if it fails, exits or times out."""
        await self._runner(name).wait_ready(timeout)

    def set_active(self, role: str, name: str) -> None:
        """Make ``name`` the active lane of ``role`` (atomic routing switch)."""
        runner = self._runner(name)
        if runner.cfg.role != role:
            raise LaneError(
                f"lane {name} serves role {runner.cfg.role!r}, not {role!r};"
                " pick a lane of that role"
            )
        self._active[role] = name
        self._log.info("active lane set", role=role, lane=name)
        self._publish()

    def hold_role(self, role: str, held: bool) -> None:
        """While ``held``, requests for ``role`` wait in the router's queue when its active
        lane is not accepting (an in-place promotion replaces it), instead of a 503."""
        if held:
            self._held.add(role)
        else:
            self._held.discard(role)
        self._publish()

    # --- reload and shutdown --------------------------------------------------------

    async def reload(self, new: Config) -> ReloadReport:
        """Apply ``new``, already validated (see ``qwend.supervisor.reload``); what was done."""
        states = {name: runner.state for name, runner in self._runners.items()}
        plan = plan_reload(self._config, states, self._active, new)
        await self._carry_out(plan)
        report = plan.report
        self._log.info(
            "configuration reloaded",
            reload=True,
            restarted=report.restarted,
            started=report.started,
            stopped=report.stopped,
            added=report.added,
        )
        return report

    async def _carry_out(self, plan: ReloadPlan) -> None:
        self._config = plan.config
        active = self._allowed_active(plan.active)
        runners = self._runners
        # 1. Removed lanes: no new requests, let in-flight ones finish, stop.
        for name in plan.remove:
            await runners[name].drain()
        running = [name for name in plan.remove if runners[name].pid is not None]
        await self._drain_wait(running, plan.config.daemon.drain_timeout_s)
        await asyncio.gather(*(runners[n].stop("removed from configuration") for n in plan.remove))
        for name in plan.remove:
            del runners[name]
        # 2. Changed lanes: stop the running ones (all first: NPUs may move between them).
        await asyncio.gather(*(runners[n].stop("configuration changed") for n in plan.restart))
        # 3. Every kept lane gets its new settings, new lanes join; order follows the config.
        for lane in plan.update:
            runners[lane.name].reconfigure(lane)
        for lane in plan.add:
            runners[lane.name] = LaneRunner(lane, self._context())
        self._runners = {lane.name: runners[lane.name] for lane in plan.config.lanes}
        self._active = active
        self._publish()
        # 4. Start again what was running, then the new active lanes (a group member is
        # started by its group, in the group's order: the daemon's groups re-sync next).
        for name in (*plan.restart, *plan.start):
            cfg = self._runners[name].cfg
            if cfg.group is None and (cfg.runs_on is None or cfg.runs_on in self._group_ready):
                await self._runners[name].start()

    async def _drain_wait(self, names: list[str], timeout: float) -> None:
        traffic = self.traffic
        if traffic is None or timeout <= 0:
            return
        results = await asyncio.gather(
            *(traffic.wait_drained(n, timeout) for n in names), return_exceptions=True
        )
        for name, ok in zip(names, results, strict=True):
            if ok is not True:
                self._log.warning("drain timed out; stopping anyway", lane=name, timeout_s=timeout)

    async def shutdown(self, drain_timeout: float) -> None:
        """Unroute everything, let in-flight requests finish, stop every lane in parallel."""
        self._closing = True
        self._publish()
        running = [n for n, r in self._runners.items() if r.pid is not None]
        await self._drain_wait(running, drain_timeout)
        await asyncio.gather(*(r.stop("qwend shutting down") for r in self._runners.values()))
        if self._session is not None:
            await self._session.close()
        if self._guard_watch is not None:
            self._guard_watch.cancel()
            await asyncio.gather(self._guard_watch, return_exceptions=True)
        self._guard.close()
        self._log.info("all lanes stopped")

    async def detach(self, drain_timeout: float) -> None:
        """Unroute everything, let in-flight requests finish, leave every lane running.

        For a restart in survive mode: the next daemon re-adopts the lanes recorded in
        the state directory. Lanes that are not running detached are stopped.
        """
        self._closing = True
        self._publish()
        running = [n for n, r in self._runners.items() if r.pid is not None]
        await self._drain_wait(running, drain_timeout)
        await asyncio.gather(*(r.detach() for r in self._runners.values()))
        if self._session is not None:
            await self._session.close()
        if self._guard_watch is not None:
            self._guard_watch.cancel()
            await asyncio.gather(self._guard_watch, return_exceptions=True)
        self._guard.close()
        self._log.info("lanes left running for the next qwend", lanes=running)
