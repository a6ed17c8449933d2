"""qwen-tui with Pilot, against the control app on a real Unix socket."""

from __future__ import annotations

import asyncio
import io
import signal
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
import tomli_w
from rich.console import Console
from textual.widgets import DataTable, RichLog, Static

from qwen_tui.actions import ACTION_TITLES, Action, all_keys
from qwen_tui.app import QwenTui, build_parser, main
from qwen_tui.commands import QwendCommands
from qwen_tui.rows import LANE_COLUMNS, lane_row, roles_line
from qwen_tui.screens.confirm import ConfirmScreen
from qwen_tui.screens.help import HelpScreen, keys_table
from qwen_tui.screens.logs import LogsScreen
from qwen_tui.screens.promotion import PromotionScreen
from qwen_tui.widgets.lanes import LanesTable
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
from qwend.api.stats import StatsFrame, StatsUpdate, full_update
from qwend.errors import QwendError
from qwend.supervisor.reload import ReloadReport
from tests.support.control_fakes import FakeSupervisor, demo_config, serve_control
from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.lanescripts.factory import make_lane


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

    async def stats_stream(self, interval_s: float | None = None) -> AsyncIterator[StatsUpdate]:
        status = await self.status()
        frame = StatsFrame(at=100.0, started_at=0.0, lanes=status.lanes, active=status.active)
        yield full_update(0, frame)
        await asyncio.Event().wait()

    async def events(self, stats_interval_s: float | None = None) -> AsyncIterator[Event]:
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


async def test_dashboard_shows_lanes_from_the_stats_stream() -> None:
    supervisor = FakeSupervisor(demo_config())
    async with serve_control(supervisor) as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            assert cell(app, "stable", "state") == "ready"
            assert cell(app, "recurrent_v2", "state") == "stopped"
            assert cell(app, "stable", "ttft p50") == "120 ms"
            summary = str(app.dashboard.query_one("#summary", Static).render())
            assert "3/5 lanes ready" in summary and "qwend 0.1.0" in summary
            # A change made behind the TUI's back arrives as a delta.
            await supervisor.stop_lane("throughput")
            await wait_for(pilot.pause, lambda: cell(app, "throughput", "state") == "stopped")


def select(app: QwenTui, lane: str) -> None:
    table = lanes_table(app)
    table.move_cursor(row=[str(k.value) for k in table.rows].index(lane))


def confirm_text(app: QwenTui) -> str:
    assert isinstance(app.screen, ConfirmScreen)
    return "\n".join(
        str(app.screen.query_one(f"#{i}", Static).render()) for i in ("confirm-title", "impact")
    )


LANE_CASES = [
    # key, lane, what the dialog must say, the call the daemon must see once confirmed
    ("x", "stable", "role stable loses its lane", ("stop", "stable")),
    ("r", "multimodal", "role multimodal has no lane until", ("restart", "multimodal")),
    ("d", "throughput", "new requests of role throughput go elsewhere", ("drain", "throughput")),
    ("s", "recurrent_v2", "it stays unrouted (candidate)", ("start", "recurrent_v2")),
    ("e", "stable_green", "clears stable_green's crash-loop state", ("reset", "stable_green")),
]


@pytest.mark.parametrize(("key", "lane", "says", "call"), LANE_CASES)
async def test_lane_actions_ask_first_and_cancel_is_the_default(
    key: str, lane: str, says: str, call: tuple[str, str]
) -> None:
    supervisor = FakeSupervisor(demo_config()).with_state("stable_green", "failed")
    async with serve_control(supervisor) as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            select(app, lane)
            await pilot.press(key)
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            assert says in confirm_text(app)
            assert app.screen.focused is not None and app.screen.focused.id == "cancel"
            await pilot.press("enter")  # the focused, safe choice
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)
            await wait_for(pilot.pause, lambda: any("cancelled" in x for x in event_lines(app)))
            assert call not in supervisor.calls

            await pilot.press(key)
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("escape")
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)
            assert call not in supervisor.calls

            await pilot.press(key)
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("right", "enter")  # move to the confirm button, press it
            await wait_for(pilot.pause, lambda: call in supervisor.calls)
            await wait_for(
                pilot.pause,
                lambda: any(x.startswith(f"{call[0]} {lane}:") for x in event_lines(app)),
            )


async def test_stop_says_how_many_requests_are_in_flight() -> None:
    async with serve_control() as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            select(app, "stable")
            await pilot.press("x")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            assert "1 request in flight on stable: drained first" in confirm_text(app)


async def test_promotion_asks_shows_progress_logs_the_result_once_and_offers_rollback() -> None:
    supervisor = FakeSupervisor(demo_config())
    async with serve_control(supervisor) as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            select(app, "recurrent_v2")
            await pilot.press("p")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            text = confirm_text(app)
            assert "in place" in text and "role stable has NO lane" in text
            await pilot.press("enter")
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)
            assert ("set_active", "recurrent_v2") not in supervisor.calls

            await pilot.press("p")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("right", "enter")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, PromotionScreen))
            steps = app.screen.query_one("#steps", Static)
            await wait_for(pilot.pause, lambda: "promoted" in str(steps.render()))
            assert "draining" in str(steps.render())
            assert ("set_active", "recurrent_v2") in supervisor.calls
            # Both streams delivered the result: the log has it once.
            await wait_for(pilot.pause, lambda: cell(app, "recurrent_v2", "role") == "stable *")
            results = [x for x in event_lines(app) if x.startswith("promoted:")]
            assert len(results) == 1, event_lines(app)

            # Roll back from the progress view: it asks first, too.
            await pilot.press("b")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            assert "role stable goes back" in confirm_text(app)
            await pilot.press("right", "enter")
            await wait_for(pilot.pause, lambda: ("set_active", "stable") in supervisor.calls)
            await wait_for(pilot.pause, lambda: cell(app, "stable", "role") == "stable *")


async def test_reload_asks_then_reports_what_changed() -> None:
    supervisor = FakeSupervisor(demo_config())

    async def reload_cb() -> ReloadReport:
        return await supervisor.reload(demo_config())

    async with serve_control(supervisor, reload_cb=reload_cb) as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            await pilot.press("R")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            assert "re-reads its configuration" in confirm_text(app)
            await pilot.press("escape")
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)
            assert not any(x.startswith("reloaded") for x in event_lines(app))
            await pilot.press("R")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("right", "enter")
            await wait_for(pilot.pause, lambda: "reloaded: no lane changed" in event_lines(app))


async def test_sort_by_any_column_and_filter() -> None:
    supervisor = FakeSupervisor(demo_config())
    async with serve_control(supervisor) as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            table = app.dashboard.query_one(LanesTable)
            daemon_order = table.shown
            await pilot.press("o")  # by lane name
            await wait_for(pilot.pause, lambda: table.shown == sorted(daemon_order))
            await pilot.press("O")
            await wait_for(pilot.pause, lambda: table.shown == sorted(daemon_order, reverse=True))
            # A header click sorts by that column: port, ascending.
            widths = [(str(k.value), c.get_render_width(table)) for k, c in table.columns.items()]
            before = sum(w for name, w in widths[: [n for n, _ in widths].index("port")])
            await pilot.click("#lanes", offset=(before + 2, 0))
            await wait_for(pilot.pause, lambda: app.dashboard.sort_column == "port")
            assert table.shown == [
                "multimodal",
                "stable",
                "throughput",
                "recurrent_v2",
                "stable_green",
            ]

            await pilot.press("slash")
            await pilot.press(*"stable")
            await wait_for(pilot.pause, lambda: len(table.shown) == 3)
            assert set(table.shown) == {"stable", "recurrent_v2", "stable_green"}
            await pilot.press("space", *"ready")
            await wait_for(pilot.pause, lambda: table.shown == ["stable"])
            await pilot.press("enter")  # keep the filter, back to the table
            assert app.dashboard.query_one(LanesTable).has_focus
            await pilot.press("slash", "escape")  # escape clears it
            await wait_for(pilot.pause, lambda: len(table.shown) == 5)


async def test_help_lists_every_key_and_palette_every_action() -> None:
    async with serve_control() as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            await pilot.press("question_mark")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, HelpScreen))
            console = Console(width=200, record=True, file=io.StringIO())
            console.print(keys_table())
            rendered = console.export_text()
            for key in all_keys():
                assert key.description in rendered
            await pilot.press("escape")
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)
            provider = QwendCommands(app.dashboard)
            names = [hit.text for hit in [h async for h in provider.discover()]]
            for action in Action:
                assert any(str(n).startswith(ACTION_TITLES[action]) for n in names), action
            assert "Promote lane recurrent_v2" in names and "Roll back role stable" in names


async def test_reconnects_after_an_abrupt_daemon_exit(tmp_path: Path) -> None:
    lane = make_lane("a")
    cfg = write_config(tmp_path, [lane], router_port=free_port())
    # The lane outlives the killed daemon and the next one adopts it: only qwend goes away.
    main_toml = tomllib.loads(cfg.read_text())
    main_toml["daemon"]["lanes_survive_restart"] = True
    cfg.write_bytes(tomli_w.dumps(main_toml).encode())
    async with run_daemon(cfg) as first:
        await first.wait_lanes({"a": "ready"})
        app = QwenTui(first.control_socket, refresh_s=0.2, backoff_cap_s=0.5)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot.pause, lambda: cell(app, "a", "state") == "ready", 30)
            await wait_for(pilot.pause, lambda: "connected to qwend" in " ".join(event_lines(app)))
            first.send(signal.SIGKILL)
            await first.wait_exit(10)
            await wait_for(pilot.pause, lambda: app.dashboard.has_class("-stale"), 30)
            summary = str(app.dashboard.query_one("#summary", Static).render())
            assert "qwend unreachable since" in summary
            # The last values stay, dimmed: the lane row still names the killed daemon's lane.
            assert cell(app, "a", "state") == "ready"
            async with run_daemon(cfg) as second:
                await second.wait_lanes({"a": "ready"})
                await wait_for(pilot.pause, lambda: not app.dashboard.has_class("-stale"), 30)
                # The event stream came back too: a second hello in the log.
                await wait_for(
                    pilot.pause,
                    lambda: sum("connected to qwend" in x for x in event_lines(app)) == 2,
                    30,
                )
                summary = str(app.dashboard.query_one("#summary", Static).render())
                assert f"pid {second.pid}" in summary


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
        assert daemon.follows[0] == ("mm", 200)
        # The stream ended: it is said, and the follow resumes without the tail again.
        said = "[log stream ended: qwend ended the log stream; reconnecting]"
        await wait_for(pilot.pause, lambda: any(said in str(x) for x in log.lines))
        await wait_for(pilot.pause, lambda: len(daemon.follows) >= 2)
        assert {n for _, n in daemon.follows[1:]} == {0}


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
    down = datetime(2026, 11, 30, 14, 2, 3, tzinfo=UTC)
    app = QwenTui(tmp_path / "absent.sock", refresh_s=0.1, clock=lambda: down)
    async with app.run_test(size=(120, 30)) as pilot:
        unreachable = app.dashboard.query_one("#unreachable", Static)
        await wait_for(pilot.pause, lambda: app.dashboard.has_class("-stale"))
        summary = str(app.dashboard.query_one("#summary", Static).render())
        assert "qwend unreachable since 14:02:03" in summary
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
