"""Snapshots of qwen-tui at 80x24 and 200x50: under load, during a promotion, daemon down.

Rendered from fixed protocol data (a scripted client: a whole frame, then deltas
whose numbers follow a fixed pattern) and a fixed clock, in UTC, so the pictures
are the same on every machine. The Pilot tests in test_app.py drive the app
against a real control socket; these pin what an operator sees, so a layout
regression shows up as a diff. Update after an intended change with
``pytest --snapshot-update``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from textual.pilot import Pilot

from qwen_tui.app import QwenTui
from qwend.api.client import DaemonNotRunning
from qwend.api.messages import (
    DaemonInfo,
    Event,
    LaneInfo,
    LaneStats,
    PromotionAccepted,
    PromotionEvent,
    PromotionMode,
    PromotionStep,
    StatusResponse,
)
from qwend.api.stats import (
    ClassSample,
    NpuSample,
    StatsFrame,
    StatsUpdate,
    diff_frames,
    full_update,
)

SnapCompare = Callable[..., bool]
T0 = 1_796_000_000.0
"""Daemon time of the first frame (a fixed instant)."""
TICKS = 60
CLOCK = datetime(2026, 11, 30, 14, 2, 3, tzinfo=UTC)
INFO = DaemonInfo(
    version="0.1.0", pid=4100, started_at=T0 - 3725, uptime_s=3725.0, config_path="/etc/qwend"
)


def lane(name: str, role: str, variant: str, state: str, **kw: Any) -> LaneInfo:
    return LaneInfo(name=name, role=role, variant=variant, state=state, **kw)


def lanes_at(i: int) -> tuple[LaneInfo, ...]:
    """The seed topology under load at tick ``i``: numbers that move in a fixed pattern."""
    wave = (i * 7) % 13
    return (
        lane("mm", "multimodal", "baseline", "ready", active=True, standby=False, pid=4201,
             port=18083, npus=(7,), started_at=T0 - 3720,
             stats=LaneStats(in_flight=1 + wave % 3, requests=40 * i, errors=i // 20,
                             ttft_p50_ms=600.0 + 9 * wave, e2e_p95_ms=700.0 + 40 * wave,
                             tokens_per_s=3.0 + wave / 10, breaker="closed")),
        lane("recurrent_v2", "stable", "recurrent_v2", "ready", active=True, standby=True,
             pid=4388, port=18084, npus=(4,), started_at=T0 - 610,
             stats=LaneStats(in_flight=2 + wave % 4, requests=90 * i, errors=0,
                             ttft_p50_ms=380.0 + 20 * wave, e2e_p95_ms=2900.0 + 600 * wave,
                             tokens_per_s=10.0 + wave, breaker="closed")),
        lane("stable", "stable", "baseline", "stopped", active=False, standby=False,
             port=18084, npus=(4,), last_exit="exit 0"),
        lane("throughput", "throughput", "v3", "backoff", active=True, standby=False,
             port=18087, npus=(3,), restarts=3, last_exit="signal SIGKILL",
             reason="crash loop: 3 exits within 60 s (exit 1: CANN device busy)",
             stats=LaneStats(requests=7, errors=7, breaker="open")),
    )  # fmt: skip


def npus_at(i: int) -> tuple[NpuSample, ...]:
    wave = (i * 5) % 11
    return (
        NpuSample(npu=3, chip=0, name="910A", health="OK", aicore_pct=0,
                  hbm_used_mb=2100, hbm_total_mb=32768, lanes=("throughput",)),
        NpuSample(npu=4, chip=0, name="910A", health="OK", aicore_pct=60 + 3 * wave,
                  hbm_used_mb=27500 + 100 * wave, hbm_total_mb=32768, lanes=("recurrent_v2",)),
        NpuSample(npu=7, chip=0, name="910A", health="Warning", aicore_pct=30 + 6 * wave,
                  hbm_used_mb=31900, hbm_total_mb=32768, lanes=("mm",)),
    )  # fmt: skip


def classes_at(i: int) -> tuple[ClassSample, ...]:
    wave = (i * 3) % 7
    return (
        ClassSample("multimodal", 40 * i, i // 20, 600.0 + 9 * wave, 700.0 + 40 * wave, 3.0),
        ClassSample("short_text", 70 * i, 0, 350.0 + 10 * wave, 1900.0 + 300 * wave, 8.0),
        ClassSample("long_text", 20 * i, 0, 900.0 + 40 * wave, 9000.0 + 900 * wave, 2.0),
    )


RUNNING = PromotionAccepted("p-7", "stable", "recurrent_v2", "stable", PromotionMode.IN_PLACE)


def frame_at(i: int, promoting: bool = False) -> StatsFrame:
    frame = StatsFrame(
        at=T0 + i,
        started_at=INFO.started_at,
        lanes=lanes_at(i),
        active={"multimodal": "mm", "stable": "recurrent_v2", "throughput": "throughput"},
        classes=classes_at(i),
        npus=npus_at(i),
    )
    if not promoting:
        return frame
    lanes = tuple(
        dataclasses.replace(x, state="draining") if x.name == "recurrent_v2" else x
        for x in frame.lanes
    )
    return dataclasses.replace(frame, lanes=lanes, promotions=(RUNNING,))


def updates(promoting: bool = False) -> Iterator[StatsUpdate]:
    previous = frame_at(0)
    yield full_update(0, previous)
    for i in range(1, TICKS):
        current = frame_at(i, promoting and i > TICKS - 15)
        yield diff_frames(i, previous, current)
        previous = current


PROMOTION_EVENTS = (
    Event.of(RUNNING),
    Event.of(PromotionEvent("p-7", "stable", "recurrent_v2", PromotionStep.PLANNED,
                            "in place on NPU 4", T0 + TICKS - 14)),
    Event.of(PromotionEvent("p-7", "stable", "recurrent_v2", PromotionStep.DRAINING,
                            "draining 3 in-flight requests", T0 + TICKS - 13)),
)  # fmt: skip


class ScriptedDaemon:
    """One scripted daemon shared by the app's connections (stats, events)."""

    def __init__(self, *, promoting: bool = False, dies: bool = False) -> None:
        self.promoting = promoting
        self.dies = dies
        self.stats_streams = 0
        self.refused = 0
        self.done = asyncio.Event()
        self.events_in = asyncio.Event()

    def client(self, socket_path: Path) -> ScriptedClient:
        return ScriptedClient(self)


class ScriptedClient:
    """Answers like ControlClient from the script; after ``dies`` nothing answers."""

    def __init__(self, daemon: ScriptedDaemon) -> None:
        self.daemon = daemon

    async def __aenter__(self) -> Self:
        if self.daemon.dies and self.daemon.done.is_set():
            self.daemon.refused += 1
            raise DaemonNotRunning(
                "qwend is not running: nothing listens on /run/qwend/control.sock"
            )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def status(self) -> StatusResponse:
        frame = frame_at(0)
        return StatusResponse(
            daemon=INFO, active=frame.active, lanes=frame.lanes, router={"policy": "balanced"}
        )

    async def stats_stream(self, interval_s: float | None = None) -> AsyncIterator[StatsUpdate]:
        self.daemon.stats_streams += 1
        for update in updates(self.daemon.promoting):
            yield update
        await self.daemon.events_in.wait()  # the event log has its hello before qwend dies
        self.daemon.done.set()
        if self.daemon.dies:
            raise DaemonNotRunning("the daemon closed the stream: Connection lost")
        await asyncio.Event().wait()  # a quiet daemon: the last frame stays

    async def events(self, stats_interval_s: float | None = None) -> AsyncIterator[Event]:
        yield Event.of(INFO)
        self.daemon.events_in.set()
        if self.daemon.promoting:
            for event in PROMOTION_EVENTS:
                yield event
        await asyncio.Event().wait()


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Event log times in UTC whatever the machine's zone."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "UTC")
    time.tzset()
    yield
    mp.undo()
    time.tzset()


def settled(app: QwenTui, daemon: ScriptedDaemon) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = daemon.done.is_set() and app.history.ticks == TICKS
            latest = app.promotions.latest
            if daemon.promoting and (latest is None or len(latest.steps) < 2):
                done = False
            # Down: wait for a refused reconnect, so the banner shows the steady reason.
            if done and (not daemon.dies or daemon.refused):
                break
            await pilot.pause(0.02)
        else:
            raise AssertionError("the scripted frames did not arrive")
        await pilot.pause()
        await pilot.pause()

    return run_before


def make(promoting: bool = False, dies: bool = False) -> tuple[QwenTui, ScriptedDaemon]:
    daemon = ScriptedDaemon(promoting=promoting, dies=dies)
    app = QwenTui(
        Path("/run/qwend/control.sock"),
        refresh_s=60,
        client_factory=daemon.client,  # type: ignore[arg-type]
        clock=lambda: CLOCK,
    )
    return app, daemon


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((200, 50), id="200x50")]


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_under_load(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app, daemon = make()
    assert snap_compare(app, terminal_size=size, run_before=settled(app, daemon))


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_during_a_promotion(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app, daemon = make(promoting=True)
    assert snap_compare(app, terminal_size=size, run_before=settled(app, daemon))


@pytest.mark.parametrize("size", SIZES)
def test_dashboard_with_the_daemon_down(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app, daemon = make(dies=True)
    assert snap_compare(app, terminal_size=size, run_before=settled(app, daemon))
