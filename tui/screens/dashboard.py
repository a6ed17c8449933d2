"""The dashboard: lanes with live latency, roles, NPUs and the event log."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from qwen_tui.messages import (
    ActionFinished,
    DaemonEvent,
    DaemonUnreachable,
    EventStreamLost,
    LaneActionRequested,
    LogsRequested,
    StatusUpdated,
)
from qwen_tui.rows import lane_rows, roles_line, summary_line
from qwen_tui.widgets.events import EventLog
from qwen_tui.widgets.lanes import LanesTable
from qwen_tui.widgets.npus import NpuPanel


class DashboardScreen(Screen[None]):
    """Everything an operator watches at once; actions act on the selected lane."""

    CSS_PATH = "dashboard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "lane_action('promote')", "Promote"),
        Binding("s", "lane_action('start')", "Start"),
        Binding("x", "lane_action('stop')", "Stop"),
        Binding("r", "lane_action('restart')", "Restart"),
        Binding("d", "lane_action('drain')", "Drain"),
        Binding("e", "lane_action('reset')", "Reset"),
        Binding("l", "logs", "Logs"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting to qwend…", id="summary")
        yield Static("", id="roles")
        yield Static("", id="unreachable")
        yield LanesTable(id="lanes")
        yield NpuPanel(id="npus")
        yield EventLog(id="events")
        yield Footer()

    @property
    def selected_lane(self) -> str | None:
        """Name of the lane under the cursor, if any."""
        return self.query_one(LanesTable).selected_lane

    def on_status_updated(self, message: StatusUpdated) -> None:
        self.remove_class("-unreachable")
        status = message.status
        self.query_one("#summary", Static).update(summary_line(status))
        self.query_one("#roles", Static).update(roles_line(status))
        self.query_one(LanesTable).show(lane_rows(status.lanes))
        if message.npus is not None:
            self.query_one(NpuPanel).show(message.npus)

    def on_daemon_unreachable(self, message: DaemonUnreachable) -> None:
        self.add_class("-unreachable")
        self.query_one("#unreachable", Static).update(message.reason)
        self.query_one("#summary", Static).update("qwend unreachable")

    def on_daemon_event(self, message: DaemonEvent) -> None:
        self.query_one(EventLog).add_event(message.event)

    def on_action_finished(self, message: ActionFinished) -> None:
        self.query_one(EventLog).add_note(message.text, "green" if message.ok else "bold red")
        if not message.ok:
            self.notify(message.text, severity="error")

    def on_event_stream_lost(self, message: EventStreamLost) -> None:
        self.query_one(EventLog).add_note(message.reason, "yellow")
        self.notify(message.reason, severity="warning")

    def action_lane_action(self, action: str) -> None:
        lane = self.selected_lane
        if lane is None:
            self.notify("no lane selected", severity="warning")
            return
        self.post_message(LaneActionRequested(lane, action))

    def action_logs(self) -> None:
        lane = self.selected_lane
        if lane is not None:
            self.post_message(LogsRequested(lane))
