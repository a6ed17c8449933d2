"""qwen-tui with Pilot, against the control app on a real Unix socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
from textual.widgets import DataTable, RichLog, Static

from qwen_tui.app import QwenTui, build_parser, main
from qwen_tui.rows import LANE_COLUMNS, lane_row, roles_line
from qwen_tui.screens.logs import LogsScreen
from qwend.api.client import DaemonNotRunning, RemoteError
from qwend.api.messages import (
    DaemonInfo,
    ErrorCode,
    Event,
    LaneInfo,
    LaneStats,
    LogLine,
    NpusResponse,
    StatusResponse,
)
from qwend.errors import QwendError
from tests.support.control_fakes import FakeSupervisor, demo_config, serve_control


async def wait_for(
    pilot_pause: Callable[[], object], check: Callable[[], bool], timeout: float = 15.0
) -> None:
    """Let the app run until ``check`` holds (bounded by ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot_pause()  # type: ignore[misc]
        await asyncio.sleep(0.02)


INFO = DaemonInfo(version="0.1.0", pid=1, started_at=0.0, uptime_s=1.0, config_path="x")
HELLO = Event.of(INFO)


class ScriptedDaemon:
    """What ``ScriptedClient`` answers: one lane, a scripted event stream per connection."""

    def __init__(self, streams: Sequence[Sequence[Event | QwendError]] = ()) -> None:
        self.streams = list(streams)
        self.event_connections = 0
        self.follows: list[tuple[str, int]] = []

    def client(self, socket_path: Path) -> ScriptedClient:
        return ScriptedClient(self)


class ScriptedClient:
    """Stands in for ControlClient without a socket."""

    def __init__(self, daemon: ScriptedDaemon) -> None:
        self.daemon = daemon

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def status(self) -> StatusResponse:
        lane = LaneInfo(
            name="mm", role="multimodal", variant="v3", state="ready", active=True, standby=False
        )
        return StatusResponse(daemon=INFO, active={"multimodal": "mm"}, lanes=(lane,))

    async def npus(self) -> NpusResponse:
        return NpusResponse(enabled=False)

    async def events(self) -> AsyncIterator[Event]:
        self.daemon.event_connections += 1
        script = self.daemon.streams.pop(0) if self.daemon.streams else []
        for item in script:
            if isinstance(item, QwendError):
                raise item
            yield item
        if not script:
            await asyncio.Event().wait()  # a quiet, healthy stream

    async def follow_logs(self, name: str, n: int = 100) -> AsyncIterator[LogLine]:
        self.daemon.follows.append((name, n))
        for i in range(3):
            yield LogLine(name, f"{name} scripted line {i}")


def event_lines(app: QwenTui) -> list[str]:
    return [str(line.text) for line in app.dashboard.query_one("#events", RichLog).lines]


def notices(app: QwenTui) -> list[str]:
    return [notification.message for notification in app._notifications]


def lanes_table(app: QwenTui) -> DataTable[object]:
    return app.dashboard.query_one("#lanes", DataTable)


def cell(app: QwenTui, lane: str, column: str) -> str:
    return str(lanes_table(app).get_cell(lane, column))


def test_lane_row_cells_follow_the_columns() -> None:
    info = LaneInfo(
        name="stable",
        role="stable",
        variant="recurrent_v2",
        state="ready",
        active=True,
        standby=False,
        pid=4242,
        port=18084,
        npus=(4,),
        uptime_s=125.0,
        restarts=2,
        stats=LaneStats(in_flight=3, ttft_p50_ms=412.4, e2e_p95_ms=3190.0, tokens_per_s=11.26),
    )
    row = lane_row(info)
    cells = dict(zip(LANE_COLUMNS, row.cells, strict=True))
    assert cells["role"] == "stable *"
    assert cells["pid"] == "4242"
    assert cells["npus"] == "4"
    assert cells["up"] == "2m05s"
    assert cells["in-flight"] == "3"
    assert cells["ttft p50"] == "412 ms"
    assert cells["tok/s"] == "11.3"
    assert row.state_style == "green"


def test_help_and_version_parse() -> None:
    args = build_parser().parse_args(["--socket", "/tmp/x.sock", "--refresh", "0.5"])
    assert args.socket == "/tmp/x.sock"
    assert args.refresh == 0.5


async def test_dashboard_shows_lanes_and_acts_on_them() -> None:
    supervisor = FakeSupervisor(demo_config())
    async with serve_control(supervisor) as served:
        app = QwenTui(served.path, refresh_s=0.1)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            assert cell(app, "stable", "state") == "ready"
            assert cell(app, "recurrent_v2", "state") == "stopped"
            summary = str(app.dashboard.query_one("#summary", Static).render())
            assert "3/5 lanes ready" in summary

            # Restart a lane that is no role's active lane (the fourth row: recurrent_v2).
            table = lanes_table(app)
            table.move_cursor(row=3)
            await pilot.press("r")
            await wait_for(pilot.pause, lambda: ("restart", "recurrent_v2") in supervisor.calls)

            # Stopping the stable lane, its role's active lane, is refused by the daemon
            # and the refusal is shown.
            table.move_cursor(row=1)
            await pilot.press("x")
            log = app.dashboard.query_one("#events", RichLog)
            await wait_for(
                pilot.pause,
                lambda: any("refusing to stop lane 'stable'" in str(line) for line in log.lines),
            )
            assert cell(app, "stable", "state") == "ready"
            assert ("stop", "stable") not in supervisor.calls


async def test_logs_screen_shows_the_lane_log() -> None:
    async with serve_control() as served:
        app = QwenTui(served.path, refresh_s=0.1)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            await pilot.press("l")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, LogsScreen))
            log = app.screen.query_one("#log", RichLog)
            await wait_for(
                pilot.pause, lambda: any("multimodal line 4" in str(x) for x in log.lines)
            )
            await pilot.press("escape")
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)


async def test_logs_screen_follows_through_the_injected_client() -> None:
    daemon = ScriptedDaemon()
    app = QwenTui(Path("/nonexistent/control.sock"), refresh_s=60, client_factory=daemon.client)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 1)
        await pilot.press("l")
        await wait_for(pilot.pause, lambda: isinstance(app.screen, LogsScreen))
        log = app.screen.query_one("#log", RichLog)
        await wait_for(pilot.pause, lambda: any("mm scripted line 2" in str(x) for x in log.lines))
        assert daemon.follows == [("mm", 200)]


async def test_a_broken_event_stream_is_a_notice() -> None:
    cut = DaemonNotRunning("the daemon closed the event stream: cut")
    daemon = ScriptedDaemon([[HELLO, cut]])
    app = QwenTui(Path("/run/qwend/control.sock"), refresh_s=60, client_factory=daemon.client)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        said = "no live events: the daemon closed the event stream: cut; retrying"
        await wait_for(pilot.pause, lambda: said in event_lines(app))
        assert "connected to qwend 0.1.0" in event_lines(app)
        assert said in notices(app)


async def test_a_refused_event_stream_is_said_once() -> None:
    refused = RemoteError(ErrorCode.NOT_FOUND, "no /v1/events here", 404)
    daemon = ScriptedDaemon([[refused], [refused]])
    app = QwenTui(Path("/run/qwend/control.sock"), refresh_s=0.1, client_factory=daemon.client)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot.pause, lambda: daemon.event_connections >= 3)
        assert notices(app) == ["no live events: no /v1/events here; retrying"]


async def test_an_unreachable_daemon_adds_no_event_notice() -> None:
    away = DaemonNotRunning("qwend is not running")
    daemon = ScriptedDaemon([[away]])
    app = QwenTui(Path("/run/qwend/control.sock"), refresh_s=0.1, client_factory=daemon.client)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot.pause, lambda: daemon.event_connections >= 2)
        assert notices(app) == []
        assert not any("no live events" in line for line in event_lines(app))


async def test_unreachable_daemon_is_said_plainly(tmp_path: Path) -> None:
    app = QwenTui(tmp_path / "absent.sock", refresh_s=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        unreachable = app.dashboard.query_one("#unreachable", Static)
        await wait_for(pilot.pause, lambda: app.dashboard.has_class("-unreachable"))
        assert "absent.sock" in str(unreachable.render())


def test_roles_line_lists_each_role() -> None:
    from qwend.api.messages import DaemonInfo, StatusResponse

    status = StatusResponse(
        daemon=DaemonInfo(version="0.1.0", pid=1, started_at=0.0, uptime_s=1.0, config_path="x"),
        active={"stable": "recurrent_v2", "multimodal": "mm"},
        lanes=(),
    )
    assert roles_line(status) == "multimodal → mm   stable → recurrent_v2"


def test_main_rejects_bad_arguments_with_usage_status() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--refresh", "x"], env={})
    assert exc.value.code == 2
