"""The lanes table: one row per lane, updated in place so the cursor stays put.

Columns grow with their content at once (a value never gets cut) and shrink back
once the long value has been gone for a few ticks (``qwen_tui.widths``); the lane
name column stays put while the table scrolls sideways.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from qwen_tui.history import STALE_STYLE
from qwen_tui.rows import LANE_COLUMNS, LaneRow
from qwen_tui.widths import SHRINK_AFTER_TICKS, ColumnWidths, needed_widths

_STATE = LANE_COLUMNS.index("state")
_REASON = LANE_COLUMNS.index("reason")


class LanesTable(DataTable[str | Text]):
    """Lanes with live latency; the state cell is coloured by state."""

    DEFAULT_CSS = Path(__file__).with_name("lanes.tcss").read_text(encoding="utf-8")

    def __init__(self, *, id: str | None = None, shrink_after: int = SHRINK_AFTER_TICKS) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, fixed_columns=1)
        self._shown: dict[str, tuple[str, ...]] = {}
        self._stale = False
        self._widths = ColumnWidths({c: cell_len(c) for c in LANE_COLUMNS}, hold=shrink_after)

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
        else:
            for row in rows:
                before = self._shown.get(row.key)
                if before == row.cells:
                    continue  # nothing to redraw: most ticks change a few cells only
                cells = _cells(row, stale)
                for i, (column, cell) in enumerate(zip(LANE_COLUMNS, cells, strict=True)):
                    if not before or before[i] != row.cells[i]:
                        # Widths are decided below, once per tick: no relayout per cell.
                        self.update_cell(row.key, column, cell)
                self._shown[row.key] = row.cells
        self._resize_columns(rows)

    def _resize_columns(self, rows: Sequence[LaneRow]) -> None:
        """Grow or shrink the columns the width policy says change on this tick."""
        if not rows:
            return  # nothing shown (all filtered out): no evidence to shrink on
        changed = self._widths.tick(needed_widths(LANE_COLUMNS, [row.cells for row in rows]))
        for column in changed:
            # Re-measuring the widest cell makes the table recompute the column: wider at
            # once, or narrower (DataTable then measures every cell of the column).
            i = LANE_COLUMNS.index(column)
            widest = max(rows, key=lambda row: cell_len(row.cells[i]))
            self.update_cell(widest.key, column, _cells(widest, self._stale)[i], update_width=True)

    @property
    def column_widths(self) -> dict[str, int]:
        """Each column's content width as drawn now."""
        return {c: self.columns[ColumnKey(c)].content_width for c in LANE_COLUMNS}


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
