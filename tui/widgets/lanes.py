"""The lanes table: one row per lane, updated in place so the cursor stays put."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable

from qwen_tui.rows import LANE_COLUMNS, LaneRow

_STATE = LANE_COLUMNS.index("state")


class LanesTable(DataTable[str | Text]):
    """Lanes with live latency; the state cell is coloured by state."""

    DEFAULT_CSS = Path(__file__).with_name("lanes.tcss").read_text(encoding="utf-8")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

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

    def show(self, rows: Sequence[LaneRow]) -> None:
        """Show ``rows``: cells change in place unless the set of lanes changed."""
        wanted = [row.key for row in rows]
        present = [str(key.value) for key in self.rows]
        if present != wanted:
            # The lane set changed (reload): rebuild, keeping the cursor on the same lane.
            selected = self.selected_lane
            self.clear()
            for row in rows:
                self.add_row(*_cells(row), key=row.key)
            if selected in wanted:
                self.move_cursor(row=wanted.index(selected))
            return
        for row in rows:
            for column, cell in zip(LANE_COLUMNS, _cells(row), strict=True):
                self.update_cell(row.key, column, cell)


def _cells(row: LaneRow) -> list[str | Text]:
    out: list[str | Text] = list(row.cells)
    out[_STATE] = Text(row.cells[_STATE], style=row.state_style)
    return out
