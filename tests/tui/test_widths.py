"""Column widths follow their content: grow at once, shrink only after a quiet spell."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from qwen_tui.rows import lane_row
from qwen_tui.widgets.lanes import LanesTable
from qwen_tui.widths import ColumnWidths, needed_widths
from qwend.api.messages import LaneInfo


def test_a_column_grows_at_once_and_shrinks_after_hold_ticks() -> None:
    widths = ColumnWidths({"state": 5}, hold=3)
    assert widths.tick({"state": 8}) == {"state": 8}  # "draining" appears: wider now
    assert widths.tick({"state": 5}) == {}
    assert widths.tick({"state": 7}) == {}
    # Third tick in a row narrower: shrink to the widest of those ticks, not the last.
    assert widths.tick({"state": 5}) == {"state": 7}
    assert widths.widths == {"state": 7}


def test_a_value_flipping_every_tick_does_not_make_the_column_jitter() -> None:
    widths = ColumnWidths({"e2e": 3}, hold=3)
    changes = [widths.tick({"e2e": 7 if i % 2 else 6}) for i in range(12)]
    assert changes[1] == {"e2e": 7}
    assert all(c == {} for i, c in enumerate(changes) if i > 1)


def test_a_column_is_never_narrower_than_its_header() -> None:
    widths = ColumnWidths({"restarts": 8}, hold=1)
    assert widths.tick({"restarts": 1}) == {}
    assert widths.widths["restarts"] == 8


def test_hold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one tick"):
        ColumnWidths({"a": 1}, hold=0)


def test_needed_widths_count_terminal_cells() -> None:
    assert needed_widths(("a", "b"), [("x", "全角"), ("xyz", "")]) == {"a": 3, "b": 4}


def _lane(state: str, reason: str | None = None) -> LaneInfo:
    return LaneInfo(
        name="stable", role="stable", variant="v3", state=state, active=True,
        standby=False, reason=reason,
    )  # fmt: skip


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LanesTable(id="lanes", shrink_after=3)


async def test_the_lanes_table_shrinks_back_once_a_long_value_is_gone() -> None:
    app = TableApp()
    async with app.run_test(size=(200, 10)) as pilot:
        table = app.query_one(LanesTable)
        table.show([lane_row(_lane("ready"))])
        await pilot.pause()
        narrow = table.column_widths
        long_reason = "crash loop: 3 exits in 60 s"
        table.show([lane_row(_lane("backoff", long_reason))])
        await pilot.pause()
        assert table.column_widths["reason"] == len(long_reason)
        assert table.column_widths["state"] == len("backoff")
        for _ in range(2):  # ready again, but not yet for long enough
            table.show([lane_row(_lane("ready"))])
            await pilot.pause()
            assert table.column_widths["reason"] == len(long_reason)
        table.show([lane_row(_lane("ready"))])
        await pilot.pause()
        assert table.column_widths == narrow
        assert str(table.get_cell("stable", "reason")) == "-"
