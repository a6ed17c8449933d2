"""Plain text helpers: the one table layout, durations and milliseconds."""

from __future__ import annotations

from qwend.text import cell_text, duration, milliseconds, table


def test_table_alignment() -> None:
    out = table(["A", "Name"], [[1, "x"], [100, "longer"]]).splitlines()
    assert out == ["  A  Name", "  1  x", "100  longer"]


def test_table_of_text_is_left_aligned_without_trailing_blanks() -> None:
    out = table(("LANE", "PID", "NOTE"), [("stable", "4242", ""), ("mm", "-", "degraded")])
    assert out == "LANE    PID   NOTE\nstable  4242\nmm      -     degraded"


def test_table_without_rows_is_its_header() -> None:
    assert table(["NPU", "Chips"], []) == "NPU  Chips"


def test_numeric_columns_show_none_as_dash_and_floats_with_one_decimal() -> None:
    out = table(["Power(W)"], [[129.04], [None]]).splitlines()
    assert out == ["Power(W)", "   129.0", "       -"]
    assert [cell_text(v) for v in (None, 1.25, 7, "x")] == ["-", "1.2", "7", "x"]


def test_durations() -> None:
    assert duration(None) == "-"
    assert duration(12.9) == "12s"
    assert duration(247) == "4m07s"
    assert duration(7500) == "2h05m"
    assert duration(4 * 86400 + 3 * 3600 + 59) == "4d3h"


def test_milliseconds() -> None:
    assert milliseconds(None) == "-"
    assert milliseconds(412.4) == "412ms"
    assert milliseconds(412.6, sep=" ") == "413 ms"
