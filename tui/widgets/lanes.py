"""The lanes table: one row per lane, updated in place so the cursor stays put.

Columns grow with their content (a value never gets cut), and the lane name
column stays put while the table scrolls sideways.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from qwen_tui.history import STALE_STYLE
from qwen_tui.rows import LANE_COLUMNS, LaneRow

_STATE = LANE_COLUMNS.index("state")
_REASON = LANE_COLUMNS.index("reason")


class LanesTable(DataTable[str | Text]):
    """Lanes with live latency; the state cell is coloured by state."""

    DEFAULT_CSS = Path(__file__).with_name("lanes.tcss").read_text(encoding="utf-8")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, fixed_columns=1)
        self._shown: dict[str, tuple[str, ...]] = {}
        self._stale = False

    def on_mount(self) -> None:
        for column in LANE_COLUMNS:
            self.add_column(column, key=column)

    @property
    def selected_lane(self) -> str | None:
        """Name of the lane under the cursor, if any."""
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)

    @property
    def shown(self) -> list[str]:
        """Lane names in display order."""
        return [str(key.value) for key in self.rows]

    def show(self, rows: Sequence[LaneRow], stale: bool = False) -> None:
        """Show ``rows``: changed cells update in place unless the rows or their order changed.

        ``stale``: the daemon is away; the rows are drawn grey, no state looks healthy.
        """
        if stale != self._stale:
            self._stale = stale
            self._shown = dict.fromkeys(self._shown, ())  # every cell changes colour
        wanted = [row.key for row in rows]
        if self.shown != wanted:
            # Lanes came or went, or the sort/filter changed: rebuild, cursor on the same lane.
            selected = self.selected_lane
            self.clear()
            self._shown = {}
            for row in rows:
                self.add_row(*_cells(row, stale), key=row.key)
                self._shown[row.key] = row.cells
            if selected in wanted:
                self.move_cursor(row=wanted.index(selected))
            return
        for row in rows:
            before = self._shown.get(row.key)
            if before == row.cells:
                continue  # nothing to redraw: most ticks change a few cells only
            for i, (column, cell) in enumerate(zip(LANE_COLUMNS, _cells(row, stale), strict=True)):
                if not before or before[i] != row.cells[i]:
                    # Re-measuring columns costs a relayout: only when the value got wider.
                    wider = len(row.cells[i]) > self.columns[ColumnKey(column)].content_width
                    self.update_cell(row.key, column, cell, update_width=wider)
            self._shown[row.key] = row.cells


def _cells(row: LaneRow, stale: bool) -> list[str | Text]:
    """Text, never str: a str cell is parsed as markup (slow, and wrong for a reason in [])."""
    if stale:
        return [_text(cell, STALE_STYLE) for cell in row.cells]
    out: list[str | Text] = [_text(cell) for cell in row.cells]
    out[_STATE] = _text(row.cells[_STATE], row.state_style)
    if row.cells[_REASON] != "-":
        out[_REASON] = _text(row.cells[_REASON], "dark_orange")
    return out


def _text(cell: str, style: str = "") -> Text:
    return Text(cell, style=style, no_wrap=True, end="")
