"""Small in-test stand-ins following the Supervisor / Router / monitor contracts.

Used by the promotion and control-API tests to drive every branch quickly;
the end-to-end tests use the real daemon instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from qwend.broadcast import Broadcast, Subscription
from qwend.config.model import Config, HealthConfig, LaneConfig
from qwend.control.app import create_control_socket, make_control_app, remove_control_socket
from qwend.control.context import ReloadCallback
from qwend.errors import LaneError, PreflightError
from qwend.promotion.promoter import Promoter
from qwend.promotion.state import StateStore
from qwend.routing.windows import LatencyStats, Percentiles
from qwend.supervisor.reload import ReloadReport
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import LaneEvent, LaneSnapshot

S = LaneState


def lane(
    name: str,
    role: str,
    npus: tuple[int, ...],
    port: int,
    *,
    standby: bool = False,
    variant: str = "v3",
) -> LaneConfig:
    return LaneConfig(
        name=name,
        role=role,
        variant=variant,
        npus=npus,
        port=port,
        model="qwen",
        command=("qwend-sim", "serve"),
        standby=standby,
        health=HealthConfig(startup_timeout_s=5.0),
    )


def demo_config() -> Config:
    """The seed topology plus an in-place candidate and a blue/green candidate."""
    return Config(
        lanes=(
            lane("multimodal", "multimodal", (0,), 18101, variant="baseline"),
            lane("stable", "stable", (1,), 18102, variant="chunk_v2"),
            lane("throughput", "throughput", (2, 3), 18103, variant="v3"),
            lane("recurrent_v2", "stable", (1,), 18104, standby=True, variant="recurrent_v2"),
            lane("stable_green", "stable", (4,), 18105, standby=True, variant="v4"),
        )
    )


class LaneStates(dict[str, LaneState]):
    """Lane -> state; a test may also set a state by its value (``"failed"``)."""

    def __setitem__(self, name: str, state: LaneState | str) -> None:
        super().__setitem__(name, LaneState(state))


class FakeSupervisor:
    """Lane states in a dict; ``crashing`` lanes fail readiness, ``calls`` records actions."""

    def __init__(self, config: Config, *, crashing: Iterable[str] = ()) -> None:
        self._config = config
        self.active = config.default_active()
        self.states = LaneStates()
        for lc in config.lanes:
            self.states[lc.name] = S.READY if lc.name in self.active.values() else S.STOPPED
        self.crashing = set(crashing)
        self.calls: list[tuple[str, str]] = []
        self.ready_gate: asyncio.Event | None = None
        self._events: Broadcast[LaneEvent] = Broadcast(1000)
        self.logs: dict[str, list[str]] = {
            lc.name: [f"{lc.name} line {i}" for i in range(5)] for lc in config.lanes
        }
        self.follow: asyncio.Queue[str] = asyncio.Queue()
        self.started_at = time.time() - 10  # fixed, as a real lane's start time is

    @property
    def config(self) -> Config:
        return self._config

    @property
    def subscribers(self) -> int:
        """Lane event subscriptions open right now."""
        return self._events.subscribers

    def active_lanes(self) -> dict[str, str]:
        return dict(self.active)

    def _set(self, name: str, state: LaneState, reason: str | None = None) -> None:
        old = self.states[name]
        self.states[name] = state
        self._events.publish(LaneEvent(name, old, state, reason, time.time()))

    def snapshot(self, name: str) -> LaneSnapshot:
        try:
            lc = self._config.lane(name)
        except KeyError:
            raise LaneError(f"no lane named {name!r}") from None
        state = self.states[name]
        running = state not in (S.STOPPED, S.FAILED)
        return LaneSnapshot(
            name=name,
            role=lc.role,
            variant=lc.variant,
            model=lc.model,
            served_model=lc.backend_model,
            standby=lc.standby,
            active=self.active.get(lc.role) == name,
            state=state,
            pid=4000 + lc.port % 100 if running else None,
            port=lc.port,
            npus=lc.npus,
            started_at=self.started_at if running else None,
            restarts=0,
            last_exit=None,
            reason=None,
            accepting=state is S.READY and self.active.get(lc.role) == name,
            warnings=(),
        )

    def snapshots(self) -> tuple[LaneSnapshot, ...]:
        return tuple(self.snapshot(lc.name) for lc in self._config.lanes)

    def subscribe(self) -> Subscription[LaneEvent]:
        return self._events.subscribe()

    async def start_lane(self, name: str) -> None:
        self.snapshot(name)
        self.calls.append(("start", name))
        self._set(name, S.STARTING)

    async def stop_lane(self, name: str) -> None:
        self.snapshot(name)
        self.calls.append(("stop", name))
        self._set(name, S.STOPPED)

    async def restart_lane(self, name: str) -> None:
        self.calls.append(("restart", name))
        self._set(name, S.STARTING)

    async def drain_lane(self, name: str) -> None:
        self.snapshot(name)
        self.calls.append(("drain", name))
        self._set(name, S.DRAINING)

    async def drain_wait(self, name: str) -> None:
        await self.drain_lane(name) if self.states[name] is S.READY else self.snapshot(name)

    async def reset_lane(self, name: str) -> None:
        state = self.states[name]
        if state is not S.FAILED:
            raise LaneError(f"lane {name!r} is {state.value}, not failed; nothing to reset")
        self.calls.append(("reset", name))
        self._set(name, S.STARTING)

    async def wait_ready(self, name: str, timeout: float) -> None:
        self.calls.append(("wait_ready", name))
        if self.ready_gate is not None:
            await self.ready_gate.wait()
        if name in self.crashing:
            self._set(name, S.BACKOFF, "exit 1")
            raise LaneError(f"lane {name!r} exited with status 1 before it was ready")
        self._set(name, S.READY)

    def set_active(self, role: str, name: str) -> None:
        self.calls.append(("set_active", name))
        self.active[role] = name

    def hold_role(self, role: str, held: bool) -> None:
        self.calls.append(("hold" if held else "unhold", role))

    async def reload(self, new: Config) -> ReloadReport:
        self._config = new
        return ReloadReport(
            restarted=(), started=(), stopped=(), unchanged=tuple(lc.name for lc in new.lanes)
        )

    def log_tail(self, name: str, n: int, previous: bool = False) -> list[str]:
        self.snapshot(name)
        lines = [f"prev {line}" for line in self.logs[name]] if previous else self.logs[name]
        return lines[-n:]

    async def follow_log(self, name: str) -> AsyncIterator[str]:
        while True:
            line = await self.follow.get()
            yield line

    def with_state(self, name: str, state: LaneState | str) -> FakeSupervisor:
        self.states[name] = state
        return self


class FakeTraffic:
    """TrafficGate: in-flight counts per lane, drained on demand."""

    def __init__(self, drained: bool = True) -> None:
        self.drained = drained
        self.waited: list[str] = []

    def in_flight(self, lane: str) -> int:
        return 0 if self.drained else 2

    async def wait_drained(self, lane: str, timeout: float) -> bool:
        self.waited.append(lane)
        return self.drained


class FakeMonitor:
    """pre_start: None, a warning, or PreflightError."""

    def __init__(self, warning: str | None = None, busy: bool = False) -> None:
        self.warning = warning
        self.busy = busy
        self.checked: list[str] = []

    async def pre_start(self, lane: LaneConfig) -> str | None:
        self.checked.append(lane.name)
        if self.busy:
            raise PreflightError(f"NPU {lane.npus[0]} still held by pid 999 after 30s")
        return self.warning


def with_lane(config: Config, name: str, **changes: object) -> Config:
    lanes = tuple(replace(lc, **changes) if lc.name == name else lc for lc in config.lanes)  # type: ignore[arg-type]
    return replace(config, lanes=lanes)


class FakeRouter:
    """stats_snapshot() returning a small RouterSnapshot-shaped object."""

    def __init__(self) -> None:
        self.latency = LatencyStats(
            ttft=Percentiles(0.12, 0.3, 0.4, 10),
            itl=Percentiles(0.02, 0.03, 0.04, 10),
            e2e=Percentiles(1.5, 2.5, 3.0, 10),
            tokens_per_s=42.0,
        )

    def stats_snapshot(self) -> object:
        @dataclass(frozen=True)
        class Lane:
            name: str
            in_flight: int
            requests: int
            failures: int
            breaker: str
            latency: object

        @dataclass(frozen=True)
        class Snapshot:
            policy: str
            lanes: tuple[Lane, ...]

            def to_dict(self) -> dict[str, object]:
                return {"policy": self.policy, "lanes": [lane.name for lane in self.lanes]}

        return Snapshot("least_work", (Lane("stable", 1, 10, 0, "closed", self.latency),))


@dataclass
class Served:
    """A control app on a real Unix socket, with its fakes."""

    path: Path
    supervisor: FakeSupervisor
    promoter: Promoter
    app: web.Application


@contextlib.asynccontextmanager
async def serve_control(
    supervisor: FakeSupervisor | None = None,
    *,
    reload_cb: ReloadCallback | None = None,
    monitor: object | None = None,
    state_dir: Path | None = None,
    group: str | None = None,
    dir_mode: int = 0o700,
    real_npu_renderer: bool = False,
) -> AsyncIterator[Served]:
    """Serve ``make_control_app`` with fakes on a fresh short-path Unix socket."""
    sup = supervisor or FakeSupervisor(demo_config())
    store = StateStore(state_dir) if state_dir else None
    promoter = Promoter(sup, FakeTraffic(), store)
    with tempfile.TemporaryDirectory(prefix="qc", dir="/tmp") as tmp:
        Path(tmp).chmod(dir_mode)
        path = Path(tmp) / "run" / "control.sock"
        app = make_control_app(
            sup,
            promoter,
            router=FakeRouter(),
            monitor=monitor,  # type: ignore[arg-type]
            reload_cb=reload_cb,
            version="0.1.0",
            config_path="/etc/qwend/qwend.toml",
            control_socket=path,
            router_url="http://127.0.0.1:18088",
            npu_renderer=None
            if real_npu_renderer
            else lambda view: ({"npus": list(view)}, f"{len(view)} NPUs\n"),
            stats_interval_s=0.2,
        )
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        sock = create_control_socket(path, group)
        site = web.SockSite(runner, sock)
        await site.start()
        try:
            yield Served(path, sup, promoter, app)
        finally:
            await runner.cleanup()
            remove_control_socket(path)
