"""The dashboard: lanes with live latency, roles, graphs, NPUs and the event log."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from qwen_tui.actions import ACTION_KEYS, ACTION_TITLES, VIEW_KEYS, Action
from qwen_tui.history import History
from qwen_tui.messages import ActionRequested, DetailRequested, LogsRequested
from qwen_tui.promotion import Promotions
from qwen_tui.rows import LANE_COLUMNS, filter_rows, frame_summary, lane_rows, sort_rows
from qwen_tui.widgets.events import EventLog
from qwen_tui.widgets.graphs import LatencyGraphs
from qwen_tui.widgets.lanes import LanesTable
from qwen_tui.widgets.npus import NpuBars
from qwen_tui.widgets.roles import RoleMap
from qwend.api.messages import Event, StatusResponse
from qwend.api.stats import StatsFrame

COMPACT_WIDTH = 120
COMPACT_HEIGHT = 34
"""Below either, graphs hide (``g`` brings them back) and the event log shrinks."""

_SHOWN_VIEW_KEYS = {"logs", "filter", "help"}


def _bindings() -> list[BindingType]:
    bindings: list[BindingType] = [
        Binding(
            key,
            f"act('{action.value}')",
            "Rollback" if action is Action.ROLLBACK else ACTION_TITLES[action].split()[0],
        )
        for action, key in ACTION_KEYS.items()
    ]
    for key in VIEW_KEYS:
        if key.action in ("quit", "command_palette"):
            continue  # the app's own
        bindings.append(
            Binding(key.key, key.action, key.label,
                    show=key.action in _SHOWN_VIEW_KEYS)
        )  # fmt: skip
    return bindings


class DashboardScreen(Screen[None]):
    """Everything an operator watches at once; actions act on the selected lane."""

    CSS_PATH = "dashboard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = _bindings()

    def __init__(self) -> None:
        super().__init__()
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.filter_text = ""
        self.graphs_forced: bool | None = None
        self.frame: StatsFrame | None = None
        self.promotions = Promotions()
        self.status: StatusResponse | None = None
        # Held, not queried: updates arrive every tick, also while the app shuts down.
        self.summary = Static("connecting to qwend…", id="summary")
        self._summary_text = ""
        self.banner = Static("", id="unreachable")
        self.roles = RoleMap(id="roles")
        self.filter_box = Input(
            placeholder="filter lanes: words in name, role, variant, state, reason", id="filter"
        )
        self.tablebar = Static("", id="tablebar")
        self.table = LanesTable(id="lanes")
        self.graphs = LatencyGraphs(id="graphs")
        self.npus = NpuBars(id="npus")
        self.events = EventLog(id="events")

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.summary
        yield self.banner
        with Vertical(id="body"):
            yield self.roles
            yield self.filter_box
            yield self.tablebar
            yield self.table
            with Vertical(id="middle"):
                yield self.graphs
                yield self.npus
            yield self.events
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self._layout(self.size.width, self.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        self.set_class(compact, "-compact")
        graphs = self.graphs_forced if self.graphs_forced is not None else not compact
        self.graphs.display = graphs

    @property
    def selected_lane(self) -> str | None:
        """Name of the lane under the cursor, if any."""
        return self.table.selected_lane

    # --- data in -----------------------------------------------------------------------

    def show_frame(self, frame: StatsFrame, history: History, promotions: Promotions) -> None:
        self.frame = frame
        self.promotions = promotions
        self._set_stale(False)
        self._set_summary(frame_summary(self.status, frame))
        self.roles.show(frame, promotions)
        self._show_rows()
        self.graphs.show(frame, history)
        self.npus.show(frame, history)

    def _set_summary(self, text: str) -> None:
        if text != self._summary_text:  # an update costs a relayout: only on change
            self._summary_text = text
            self.summary.update(text, layout=False)  # one line, whatever it says

    def show_promotions(self, promotions: Promotions) -> None:
        """A promotion moved on: the role map shows its step."""
        if self.frame is not None:
            self.roles.show(self.frame, promotions)

    def show_status(self, status: StatusResponse) -> None:
        self.status = status

    def _set_stale(self, stale: bool) -> None:
        if stale == self.has_class("-stale"):
            return
        self.set_class(stale, "-stale")
        self.graphs.set_stale(stale)
        self.npus.set_stale(stale)
        if self.frame is not None:
            self.roles.show(self.frame, self.promotions, stale)
        self._show_rows()

    def show_unreachable(self, reason: str, since: datetime) -> None:
        self._set_stale(True)
        self.banner.update(reason)
        self._set_summary(
            f"qwend unreachable since {since:%H:%M:%S} · reconnecting · below: the last values seen"
        )

    def add_event(self, event: Event) -> None:
        self.events.add_event(event)

    def add_event_line(self, text: str) -> None:
        self.events.write(text.rstrip())

    def add_note(self, text: str, style: str) -> None:
        self.events.add_note(text, style)

    def _show_rows(self) -> None:
        if self.frame is None:
            return
        rows = lane_rows(self.frame.lanes, now=self.frame.at)
        shown = sort_rows(filter_rows(rows, self.filter_text), self.sort_column, self.sort_reverse)
        self.table.show(shown, stale=self.has_class("-stale"))
        bar = []
        if self.sort_column is not None:
            bar.append(f"sorted by {self.sort_column} {'↓' if self.sort_reverse else '↑'}")
        if self.filter_text:
            bar.append(f"filter “{self.filter_text}”: {len(shown)} of {len(rows)} lanes")
        tablebar = self.tablebar
        if tablebar.display != bool(bar):
            tablebar.display = bool(bar)
        if bar:
            tablebar.update("   ".join(bar), layout=False)

    # --- actions -----------------------------------------------------------------------

    def action_act(self, name: str) -> None:
        action = Action(name)
        lane = self.selected_lane
        if lane is None and action is not Action.RELOAD:
            self.notify("no lane selected", severity="warning")
            return
        self.post_message(ActionRequested(action, lane))

    def action_logs(self) -> None:
        lane = self.selected_lane
        if lane is not None:
            self.post_message(LogsRequested(lane))

    def action_detail(self) -> None:
        lane = self.selected_lane
        if lane is None:
            self.notify("no lane selected", severity="warning")
            return
        self.post_message(DetailRequested(lane))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter (or a click on the highlighted row) opens the lane, as in k9s.
        if event.row_key.value is not None:
            self.post_message(DetailRequested(str(event.row_key.value)))

    def action_promotion(self) -> None:
        self.app.action_show_promotion()  # type: ignore[attr-defined]

    def action_help(self) -> None:
        self.app.action_show_keys()  # type: ignore[attr-defined]

    def action_toggle_graphs(self) -> None:
        graphs = self.graphs
        self.graphs_forced = not graphs.display
        graphs.display = self.graphs_forced

    def action_sort_next(self) -> None:
        order: list[str | None] = [None, *LANE_COLUMNS]
        self.sort_column = order[(order.index(self.sort_column) + 1) % len(order)]
        self._show_rows()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._show_rows()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._show_rows()

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self._show_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(self.filter_text)
            self.table.focus()

    def on_key(self, event: events.Key) -> None:
        box = self.filter_box
        if event.key == "escape" and box.has_focus:
            # Escape in the filter clears it; Enter keeps it.
            box.value = ""
            box.display = False
            self.table.focus()
            event.stop()
