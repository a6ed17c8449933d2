"""qwen-tui with Pilot, against the control app on a real Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable, RichLog, Static

from qwen_tui.app import QwenTui, build_parser, main
from qwen_tui.rows import LANE_COLUMNS, lane_row, roles_line
from qwen_tui.screens.logs import LogsScreen
from qwend.api.messages import LaneInfo, LaneStats
from tests.support.control_fakes import FakeSupervisor, demo_config, serve_control


async def wait_for(pilot_pause: Callable[[], object], check: Callable[[], bool]) -> None:
    """Let the app run until ``check`` holds (bounded)."""
    for _ in range(200):
        if check():
            return
        await pilot_pause()  # type: ignore[misc]
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


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

            # Restart the lane under the cursor (the first row: multimodal).
            await pilot.press("r")
            await wait_for(pilot.pause, lambda: ("restart", "multimodal") in supervisor.calls)

            # Stop the stable lane: move the cursor there first.
            table = lanes_table(app)
            table.move_cursor(row=1)
            await pilot.press("x")
            await wait_for(pilot.pause, lambda: cell(app, "stable", "state") == "stopped")
            log = app.dashboard.query_one("#events", RichLog)
            await wait_for(
                pilot.pause, lambda: any("stop stable" in str(line) for line in log.lines)
            )


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
