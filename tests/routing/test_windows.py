"""Sliding-window percentiles and the per-lane/per-class series."""

from __future__ import annotations

import pytest

from qwend.routing.windows import Percentiles, Series, Window, percentiles


def test_percentiles_nearest_rank() -> None:
    p = percentiles(float(v) for v in range(1, 101))
    assert (p.p50, p.p95, p.p99, p.count) == (50.0, 95.0, 99.0, 100)
    assert percentiles([]) == Percentiles()
    assert percentiles([3.0]) == Percentiles(3.0, 3.0, 3.0, 1)


def test_window_forgets_old_samples() -> None:
    w = Window(window_s=10)
    w.add(0, 100.0)
    w.add(5, 1.0)
    w.add(9, 2.0)
    assert w.percentiles(9).count == 3
    assert w.values(12) == [1.0, 2.0]
    assert w.total(16) == 2.0
    assert w.total(20) == 0.0


def test_window_is_bounded() -> None:
    w = Window(window_s=100, max_samples=4)
    for i in range(10):
        w.add(i, float(i))
    assert w.values(10) == [6.0, 7.0, 8.0, 9.0]


def test_series_tokens_per_second() -> None:
    s = Series(window_s=10)
    s.record(1, 0.1, 0.02, 1.0, 50)
    s.record(2, None, None, 2.0, 50)
    stats = s.stats(3)
    assert stats.tokens_per_s == pytest.approx(10.0)
    assert stats.ttft.count == 1 and stats.e2e.count == 2
