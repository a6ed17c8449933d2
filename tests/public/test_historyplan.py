"""When a request's history is compressed and to what budget (pure)."""

from __future__ import annotations

import pytest

from qwend.public.historyplan import (
    DEFAULT_OUTPUT_RESERVE,
    HistoryRefused,
    Mode,
    budget_for,
    parse_mode,
)


@pytest.mark.parametrize(
    ("header", "default", "mode"),
    [
        (None, False, Mode(False)),
        (None, True, Mode(True)),
        ("auto", False, Mode(True)),
        (" OFF ", True, Mode(False)),
        ("4000", False, Mode(True, 4000)),
        ("64", False, Mode(True, 64)),
    ],
)
def test_the_header_decides_else_the_setting(header: str | None, default: bool, mode: Mode) -> None:
    assert parse_mode(header, default) == mode


@pytest.mark.parametrize("header", ["", "yes", "-5", "63", "4k", "1e4"])
def test_a_bad_header_says_what_is_accepted(header: str) -> None:
    with pytest.raises(HistoryRefused, match="'auto', 'off' or a token budget of at least 64"):
        parse_mode(header, True)


def test_the_budget_asked_for_wins_then_the_configured_then_the_lanes() -> None:
    doc = {"max_tokens": 100}
    assert budget_for(Mode(True, 500), 900, [32768], doc) == 500
    assert budget_for(Mode(True), 900, [32768], doc) == 900
    # The smallest context of the lanes that may serve it, 90 % of it, minus the answer.
    assert budget_for(Mode(True), None, [32768, 2000], doc) == 1800 - 100
    assert budget_for(Mode(True), None, [2000], {"max_completion_tokens": 300}) == 1500
    assert budget_for(Mode(True), None, [4000], {}) == 3600 - DEFAULT_OUTPUT_RESERVE
    assert budget_for(Mode(True), None, [100], {"max_tokens": 5000}) == 64  # never below
    assert budget_for(Mode(True), None, [], doc) is None  # nothing known: not compressed
