"""The dashboard: lanes with live latency, roles, NPUs and the event log."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from qwen_tui.messages import (
    ActionFinished,
    DaemonEvent,
    DaemonUnreachable,
    LaneActionRequested,
    LogsRequested,
    StatusUpdated,
)
from qwen_tui.rows import LANE_COLUMNS, lane_rows, roles_line, summary_line
from qwend.api.describe import event_line


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
        table: DataTable[str | Text] = DataTable(id="lanes", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="npus")
        yield RichLog(id="events", max_lines=500, wrap=False, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#lanes", DataTable)
        for column in LANE_COLUMNS:
            table.add_column(column, key=column)

    @property
    def selected_lane(self) -> str | None:
        """Name of the lane under the cursor, if any."""
        table = self.query_one("#lanes", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)

    def on_status_updated(self, message: StatusUpdated) -> None:
        self.remove_class("-unreachable")
        status = message.status
        self.query_one("#summary", Static).update(summary_line(status))
        self.query_one("#roles", Static).update(roles_line(status))
        self._update_lanes(message)
        npus = message.npus
        if npus is not None:
            text = npus.table if npus.enabled else "NPU monitor disabled"
            self.query_one("#npus", Static).update(Text(text.rstrip()))

    def _update_lanes(self, message: StatusUpdated) -> None:
        table = self.query_one("#lanes", DataTable)
        rows = lane_rows(message.status.lanes)
        wanted = [row.key for row in rows]
        present = [str(key.value) for key in table.rows]
        if present != wanted:
            # The lane set changed (reload): rebuild, keeping the cursor on the same lane.
            selected = self.selected_lane
            table.clear()
            for row in rows:
                table.add_row(*self._cells(row.cells, row.state_style), key=row.key)
            if selected in wanted:
                table.move_cursor(row=wanted.index(selected))
            return
        for row in rows:
            for column, cell in zip(
                LANE_COLUMNS, self._cells(row.cells, row.state_style), strict=True
            ):
                table.update_cell(row.key, column, cell)

    @staticmethod
    def _cells(cells: tuple[str, ...], state_style: str) -> list[str | Text]:
        out: list[str | Text] = list(cells)
        out[LANE_COLUMNS.index("state")] = Text(
            cells[LANE_COLUMNS.index("state")], style=state_style
        )
        return out

    def on_daemon_unreachable(self, message: DaemonUnreachable) -> None:
        self.add_class("-unreachable")
        self.query_one("#unreachable", Static).update(message.reason)
        self.query_one("#summary", Static).update("qwend unreachable")

    def on_daemon_event(self, message: DaemonEvent) -> None:
        self.query_one("#events", RichLog).write(event_line(message.event).rstrip())

    def on_action_finished(self, message: ActionFinished) -> None:
        style = "green" if message.ok else "bold red"
        self.query_one("#events", RichLog).write(Text(message.text, style=style))
        if not message.ok:
            self.notify(message.text, severity="error")

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
