"""One supervised lane: its state, its process, its life task.

The *life task* runs while the lane is meant to be up: preflight, spawn, wait
for readiness, then watch liveness and the process; on an unasked end it asks
the restart policy, sleeps the backoff and goes again, or gives up (``failed``).
An internal error (a bug, or "Too many open files" while probing) is logged, kept
as ``last_error`` for ``qwenctl status`` and followed by a backoff and a new
start, never by a lane left down for good.
Operator actions (start/stop/drain/reset) take the lane's lock, cancel the life
task where needed and feed events; every state change goes through
``qwend.supervisor.states.transition``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from qwend.config.model import LaneConfig
from qwend.errors import LaneError
from qwend.logs import lane_logger
from qwend.supervisor.detached import DetachedLaneProcess, LaneRegistry
from qwend.supervisor.guard import OrphanGuard
from qwend.supervisor.health import (
    ListenerCheck,
    Liveness,
    NotReady,
    served_model_warning,
    wait_ready,
)
from qwend.supervisor.identity import check_listeners
from qwend.supervisor.listener import Listeners
from qwend.supervisor.output import FAILURE_LINES, LogRing, failure_quote
from qwend.supervisor.process import LaneProcess, describe_requested_stop
from qwend.supervisor.remote import RemoteHandle, access, tls_warning
from qwend.supervisor.restart import RestartPolicy
from qwend.supervisor.states import Effect, Event, LaneState, Transition, transition

S = LaneState

RECOVERABLE: frozenset[LaneState] = frozenset({S.STARTING, S.READY, S.UNHEALTHY, S.DRAINING})
"""States in which the life task may hit an internal error and turn it into a backoff."""

GROUP_RESTART = "the lane group restarts it with its other members"
"""Why a group member that ended stays down (its lane reason)."""


@dataclass(frozen=True)
class LaneContext:
    """What a lane needs from its supervisor."""

    log_dir: Callable[[], Path]
    log_keep: Callable[[], int]
    log_max_bytes: Callable[[], int]
    """Size past which a lane log is rotated while the lane runs."""
    environment: Callable[[LaneConfig], dict[str, str]]
    guard: OrphanGuard
    session: Callable[[], aiohttp.ClientSession]
    preflight: Callable[[LaneConfig], None]
    """Raises PreflightError (checks claims of the other lanes and the port)."""
    pre_start: Callable[[LaneConfig], Awaitable[str | None]] | None
    on_change: Callable[[LaneRunner, LaneState, LaneState, str | None], None]
    registry: LaneRegistry | None = None
    """Set when lanes outlive the daemon (``[daemon] lanes_survive_restart``)."""


class LaneRunner:
    """State and process of one lane."""

    def __init__(self, cfg: LaneConfig, ctx: LaneContext) -> None:
        self.cfg = cfg
        self._ctx = ctx
        self.state = S.STOPPED
        self.reason: str | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.failure_log: tuple[str, ...] = ()
        """The output's last lines at the last failed start or crash (``failure_quote``)."""
        self.last_error: str | None = None
        """The last internal error while supervising the lane; cleared when it is ready."""
        self.warnings: tuple[str, ...] = ()
        self.proc: LaneProcess | DetachedLaneProcess | RemoteHandle | None = None
        self._adopted: DetachedLaneProcess | None = None
        self.ring = LogRing()
        self.policy = RestartPolicy(cfg.restart)
        self.last_traffic_ok: float | None = None
        self.lock = asyncio.Lock()
        self._life: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._live: Liveness | None = None
        self._log = lane_logger(cfg.name, component="supervisor")

    @property
    def name(self) -> str:
        """The lane's name."""
        return self.cfg.name

    @property
    def pid(self) -> int | None:
        """PID of the running lane process."""
        return self.proc.pid if self.proc is not None and self.proc.running else None

    @property
    def started_at(self) -> float | None:
        """Epoch seconds of the current process's spawn."""
        return self.proc.started_at if self.proc is not None and self.proc.running else None

    def reconfigure(self, cfg: LaneConfig) -> None:
        """New settings that need no restart (health, stop, restart, capabilities ...)."""
        self.cfg = cfg
        self.policy.reconfigure(cfg.restart)
        if self._live is not None:
            self._live.lane = cfg

    # --- state -------------------------------------------------------------

    def apply(self, event: Event, reason: str | None = None) -> Transition:
        """Feed one event; carry out the bookkeeping effects; tell the supervisor."""
        old = self.state
        result = transition(old, event)
        self.state = result.new_state
        if Effect.RESET_CRASHES in result.effects:
            self.policy.reset()
        self.reason = reason
        self._log.info(
            "lane state", old=old.value, new=self.state.value, lane_event=event.value, reason=reason
        )
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._ctx.on_change(self, old, self.state, self.reason)
        return result

    # --- operator actions (callers hold no lock; these take it) -------------

    async def start(self) -> None:
        """Begin starting (returns at once); resume a drained lane."""
        async with self.lock:
            if self.state in (S.STARTING, S.READY, S.UNHEALTHY, S.STOPPING):
                return
            if self.state is S.DRAINING:
                self.apply(Event.RESUME)
                return
            await self._cancel_life()
            if self.state is S.STOPPED:
                self.policy.reset()  # an operator start is a fresh chance
            self.apply(Event.START)
            self._life = asyncio.create_task(self._run(), name=f"lane:{self.name}")

    async def adopt(self, proc: DetachedLaneProcess) -> None:
        """Supervise a running process a previous daemon started: a start that spawns nothing."""
        self._adopted = proc
        await self.start()

    async def stop(self, reason: str | None = None) -> None:
        """Stop the lane; returns when its process group is gone."""
        async with self.lock:
            await self._cancel_life()
            if self.state is S.STOPPED:
                return
            result = self.apply(Event.STOP, reason)
            if Effect.TERMINATE in result.effects or self.state is S.STOPPING:
                await self._terminate()
                self.apply(Event.STOPPED, reason)

    async def detach(self) -> None:
        """Stop supervising and leave a detached process running (qwend restarts)."""
        async with self.lock:
            await self._cancel_life()
            proc = self.proc
            if isinstance(proc, DetachedLaneProcess):
                await proc.detach()
            elif proc is not None and proc.running:
                await self._terminate()

    async def drain(self) -> None:
        """Stop routing new requests to a ready lane."""
        async with self.lock:
            if self.state is S.READY:
                self.apply(Event.DRAIN, "draining")

    async def reset(self) -> None:
        """Clear a crash loop and start again."""
        async with self.lock:
            if self.state is S.FAILED:
                self.apply(Event.RESET)
        await self.start()

    async def _cancel_life(self) -> None:
        task, self._life = self._life, None
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The life task's own end is expected; a cancellation of the caller (a group
            # coordinator being stopped while it stops this lane) must go on up.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _terminate(self) -> None:
        proc = self.proc
        if proc is None:
            return
        asked = proc.running  # else it had ended on its own: its exit says so as it is
        sig = self.cfg.stop.signal
        result = await proc.stop(sig, self.cfg.stop.timeout_s)
        if result is not None:
            self.last_exit = describe_requested_stop(result, sig) if asked else result

    # --- the life task --------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if await self._run_and_back_off():
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug or a resource shortage (EMFILE while probing, /proc unreadable)
                # must not leave the lane down for good: back off and go again.
                await self._recover(exc)

    async def _run_and_back_off(self) -> bool:
        """One run, then the restart policy's answer; True when it gives up (crash loop)."""
        problem = await self._run_once()
        if self.cfg.group is not None:
            # A group member is never restarted alone: the leader host's coordinator sees
            # it down and restarts every member in order. It waits in backoff until then.
            self.apply(Event.CRASHED, f"{problem}; {GROUP_RESTART}")
            return True
        decision = self.policy.record_crash(time.monotonic())
        if decision.give_up and self.cfg.is_remote:
            # A remote lane is not crash-looping here: its host may bring it back any time,
            # so it is probed again after the longest backoff for as long as it is configured.
            delay = self.cfg.restart.backoff_max_s
            retry = f"retry in {delay:g}s"
            decision = replace(decision, give_up=False, delay_s=delay, reason=retry)
        if decision.give_up:
            self.apply(Event.CRASH_LOOP, f"{problem}; {decision.reason}")
            return True
        self.apply(Event.CRASHED, f"{problem}; {decision.reason}")
        await asyncio.sleep(decision.delay_s)
        self.restarts += 1
        self.apply(Event.RETRY)
        return False

    async def _recover(self, exc: Exception) -> None:
        """After an internal error: stop the process, back off, start again (never raises)."""
        delay = self.policy.record_error()
        self.last_error = f"internal error: {type(exc).__name__}: {exc}"
        reason = f"{self.last_error}; retrying in {delay:.1f}s"
        self._log.exception(
            "lane supervision failed; retrying", error=self.last_error, retry_in_s=round(delay, 1)
        )
        try:
            await self._terminate()
            if self.state in RECOVERABLE:
                self.apply(Event.CRASHED, reason)
        except Exception as again:  # the cause may persist (fds still exhausted)
            self._log.error("cleaning up after the internal error failed", error=str(again))
        await asyncio.sleep(delay)
        self.restarts += 1
        with contextlib.suppress(Exception):  # if this fails too, the next run fails and recovers
            if self.state is S.BACKOFF:
                self.apply(Event.RETRY)

    async def _spawn(self) -> LaneProcess | DetachedLaneProcess | RemoteHandle:
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            self.proc = adopted
            return adopted
        cfg = self.cfg
        if cfg.is_remote:
            access(cfg)  # unusable TLS or key files: a clear reason, then backoff
            warning = tls_warning(cfg)
            if warning is not None:
                self._log.warning("remote lane certificate not verified", warning=warning)
            self.warnings = (warning,) if warning is not None else ()
            self.proc = RemoteHandle()
            return self.proc
        self._ctx.preflight(cfg)
        warnings: list[str] = []
        if self._ctx.pre_start is not None:
            warning = await self._ctx.pre_start(cfg)
            if warning:
                warnings.append(warning)
                self._log.warning("pre-start warning", warning=warning)
        self.warnings = tuple(warnings)
        proc: LaneProcess | DetachedLaneProcess | RemoteHandle
        if self._ctx.registry is not None:
            proc = DetachedLaneProcess(
                cfg,
                log_dir=self._ctx.log_dir(),
                log_keep=self._ctx.log_keep(),
                log_max_bytes=self._ctx.log_max_bytes(),
                env=self._ctx.environment(cfg),
                registry=self._ctx.registry,
                ring=self.ring,
            )
        else:
            proc = LaneProcess(
                cfg,
                log_dir=self._ctx.log_dir(),
                log_keep=self._ctx.log_keep(),
                log_max_bytes=self._ctx.log_max_bytes(),
                env=self._ctx.environment(cfg),
                guard=self._ctx.guard,
                ring=self.ring,
            )
        self.proc = proc
        await proc.start()
        return proc

    async def _run_once(self) -> str:
        """One start and run; returns why it ended (it only ends unasked)."""
        try:
            proc = await self._spawn()
        except LaneError as exc:
            return str(exc)
        if not self.cfg.port:
            return await self._run_headless(proc)
        try:
            await wait_ready(self._ctx.session(), self.cfg, proc.exited, self._listeners(proc))
        except NotReady as exc:
            if proc.running:
                self.apply(Event.UNHEALTHY, str(exc))
                await self._terminate()
                self.failure_log = failure_quote(self.ring.tail(FAILURE_LINES))
                return str(exc)
            await proc.finish()
            self.last_exit = proc.exit_description
            self.failure_log = failure_quote(self.ring.tail(FAILURE_LINES))
            return f"{proc.exit_description} during start"
        mismatch = await served_model_warning(self._ctx.session(), self.cfg)
        if mismatch is not None:
            self._log.warning("lane rejects its served model name", warning=mismatch)
            self.warnings = (*self.warnings, mismatch)
        self.apply(Event.READY)
        self.policy.clear_errors()
        self.last_error = None
        self.failure_log = ()
        return await self._watch(proc)

    async def _run_headless(self, proc: LaneProcess | DetachedLaneProcess | RemoteHandle) -> str:
        """A member without an API (port 0, a ``--headless`` rank): nothing to probe, so it
        is ready once spawned and runs until its process ends (its leader's readiness says
        whether it joined)."""
        self.apply(Event.READY)
        self.policy.clear_errors()
        self.last_error = None
        self.failure_log = ()
        await proc.exited.wait()
        await proc.finish()
        self.last_exit = proc.exit_description
        self.failure_log = failure_quote(self.ring.tail(FAILURE_LINES))
        return f"exited unexpectedly ({proc.exit_description})"

    def _listeners(
        self, proc: LaneProcess | DetachedLaneProcess | RemoteHandle
    ) -> ListenerCheck | None:
        """Who listens on the lane's port, checked in a thread (it reads /proc); None for
        a remote lane (its sockets are on another host)."""
        if isinstance(proc, RemoteHandle):
            return None
        pgid = proc.pid
        assert pgid is not None

        async def check() -> Listeners:
            return await asyncio.to_thread(check_listeners, self.name, self.cfg.port, pgid)

        return check

    async def _watch(self, proc: LaneProcess | DetachedLaneProcess | RemoteHandle) -> str:
        live = Liveness(
            self.cfg,
            self._ctx.session(),
            last_traffic_ok=lambda: self.last_traffic_ok,
            listeners=self._listeners(proc),
        )
        self._live = live
        live_task = asyncio.create_task(live.run(), name=f"live:{self.name}")
        exit_task = asyncio.create_task(proc.exited.wait(), name=f"exit:{self.name}")
        try:
            await asyncio.wait({live_task, exit_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (live_task, exit_task):
                task.cancel()
            await asyncio.gather(live_task, exit_task, return_exceptions=True)
        if proc.exited.is_set():
            await proc.finish()
            self.last_exit = proc.exit_description
            self.failure_log = failure_quote(self.ring.tail(FAILURE_LINES))
            return f"exited unexpectedly ({proc.exit_description})"
        reason = live_task.result()
        self.apply(Event.UNHEALTHY, reason)
        await self._terminate()
        return reason

    async def wait_ready(self, timeout: float) -> None:
        """Wait until ready; raise LaneError when the start fails, stops or times out."""
        deadline = time.monotonic() + timeout
        seen_start = self.state in (S.STARTING, S.UNHEALTHY)
        while True:
            if self.state is S.READY:
                return
            if self.state in (S.FAILED, S.STOPPED, S.STOPPING) or (
                seen_start and self.state is S.BACKOFF
            ):
                raise LaneError(
                    f"lane {self.name} did not become ready: {self.state.value}"
                    f" ({self.reason or 'no reason given'})"
                )
            seen_start = seen_start or self.state is S.STARTING
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LaneError(
                    f"lane {self.name} not ready within {timeout:g}s (state {self.state.value})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
