"""Sliding hit windows and the retry budget, driven by an explicit clock."""

from __future__ import annotations

import pytest

from qwend.routing.outcomes import RETRY_FLOOR, HitWindow, RetryBudget


def test_window_counts_events_and_hits() -> None:
    w = HitWindow(10)
    w.add(0.0, True)
    w.add(0.5, False)
    w.add(9.5, False)
    assert w.counts(9.9) == (3, 1)


def test_window_slides_bucket_by_bucket() -> None:
    w = HitWindow(10)
    w.add(0.5, True)
    w.add(5.5, True)
    assert w.counts(10.5) == (1, 1)  # the first bucket left the window
    assert w.counts(100.0) == (0, 0)


def test_window_clear_and_bad_length() -> None:
    w = HitWindow(1)
    w.add(0.0, True)
    w.clear()
    assert w.counts(0.0) == (0, 0)
    with pytest.raises(ValueError):
        HitWindow(0)


def test_retry_budget_has_a_floor_then_a_ratio() -> None:
    budget = RetryBudget(0.2, window_s=10)
    allowed = sum(budget.try_spend(0.0) for _ in range(50))
    assert allowed == RETRY_FLOOR
    for _ in range(100):
        budget.on_request(1.0)
    assert sum(budget.try_spend(1.0) for _ in range(50)) == 20  # 20 % of 100
    assert budget.try_spend(11.0)  # a new window
