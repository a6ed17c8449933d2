"""Snapshots of qwen-tui's screens, rendered from fixed protocol data.

The Pilot tests in test_tui.py drive the app against a real control socket;
these pin what an operator sees, so a layout regression shows up as a diff.
Update after an intended change with ``pytest --snapshot-update``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from textual.pilot import Pilot
from textual.widgets import DataTable

from qwen_tui.app import QwenTui
from qwend.api.client import DaemonNotRunning
from qwend.api.messages import (
    DaemonInfo,
    Event,
    LaneInfo,
    LaneStats,
    NpusResponse,
    StatusResponse,
)

SnapCompare = Callable[..., bool]

NPU_TABLE = """\
npu-smi 24.1.RC2: reading 0.8 s old

NPU  Chip  Dev  Name  Health  Power(W)  Temp(C)  AICore%  Memory(MB)         Lanes
  3     0    3  910A  OK         129.0       45       46  18528 / 32768 HBM  throughput
  4     0    4  910A  OK         124.2       44       40  18480 / 32768 HBM  recurrent_v2
  7     0    7  910A  OK          67.3       42        0  18432 / 32768 HBM  mm
"""


def lane(name: str, role: str, variant: str, state: str, **kw: Any) -> LaneInfo:
    return LaneInfo(name=name, role=role, variant=variant, state=state, **kw)


STATUS = StatusResponse(
    daemon=DaemonInfo(
        version="0.1.0", pid=4100, started_at=0.0, uptime_s=3725.0, config_path="/etc/qwend"
    ),
    active={"multimodal": "mm", "stable": "recurrent_v2", "throughput": "throughput"},
    lanes=(
        lane("mm", "multimodal", "baseline", "ready", active=True, standby=False, pid=4201,
             port=18083, npus=(7,), uptime_s=3720.0,
             stats=LaneStats(in_flight=1, ttft_p50_ms=655.0, e2e_p95_ms=710.0, tokens_per_s=3.1,
                             breaker="closed")),
        lane("recurrent_v2", "stable", "recurrent_v2", "ready", active=True, standby=True,
             pid=4388, port=18084, npus=(4,), uptime_s=610.0, restarts=0,
             stats=LaneStats(in_flight=2, ttft_p50_ms=412.0, e2e_p95_ms=3190.0,
                             tokens_per_s=10.4, breaker="closed")),
        lane("stable", "stable", "baseline", "stopped", active=False, standby=False,
             port=18084, npus=(4,), last_exit="exit 0"),
        lane("throughput", "throughput", "v3", "backoff", active=True, standby=False,
             port=18087, npus=(3,), restarts=3, last_exit="signal SIGKILL",
             stats=LaneStats(breaker="open")),
    ),
    router={"policy": "balanced_long_text"},
)  # fmt: skip


class CannedClient:
    """Answers like ControlClient with fixed data; events never come."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def status(self) -> StatusResponse:
        return STATUS

    async def npus(self) -> NpusResponse:
        return NpusResponse(enabled=True, table=NPU_TABLE)

    async def events(self) -> AsyncIterator[Event]:
        await asyncio.Event().wait()  # never set: no events arrive
        return
        yield  # an async generator, as ControlClient.events is


class AbsentClient(CannedClient):
    """A daemon that is not running."""

    async def __aenter__(self) -> Self:
        raise DaemonNotRunning(f"qwend is not running: nothing listens on {self.socket_path}")


def until_rows(count: int) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, QwenTui)
        for _ in range(200):
            if app.dashboard.query_one("#lanes", DataTable).row_count == count:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    return run_before


def test_dashboard_snapshot(snap_compare: SnapCompare) -> None:
    app = QwenTui(Path("/run/qwend/control.sock"), refresh_s=60, client_factory=CannedClient)  # type: ignore[arg-type]
    assert snap_compare(app, terminal_size=(150, 32), run_before=until_rows(4))


def test_unreachable_snapshot(snap_compare: SnapCompare) -> None:
    app = QwenTui(Path("/run/qwend/control.sock"), refresh_s=60, client_factory=AbsentClient)  # type: ignore[arg-type]
    assert snap_compare(app, terminal_size=(100, 20), run_before=until_rows(0))
