"""Percentiles, summaries and the seeded bootstrap."""

from __future__ import annotations

import math

import pytest

from qwend.bench.stats import bootstrap_ratio, percentile, summarize


def test_percentile_interpolates_between_order_statistics_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)  # numpy.percentile([1,2,3,4], 90)
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="0-100"):
        percentile(values, 101)


def test_summary_of_the_seed_verification_latencies() -> None:
    # The ten single-request latencies (ms) of the seed's verification report.
    ms = [1926.2, 1849.0, 1917.3, 1855.4, 1929.4, 1967.0, 1907.5, 1907.9, 1873.0, 1839.4]
    s = summarize(ms)
    assert (s.count, s.min, s.max) == (10, 1839.4, 1967.0)
    assert round(s.mean, 1) == 1897.2
    assert round(s.median, 1) == 1907.7
    assert round(s.stdev, 1) == 41.3
    assert summarize([2.0]).stdev == 0.0
    assert summarize([]).to_dict()["mean"] is None


def test_bootstrap_is_deterministic_for_a_seed_and_brackets_the_ratio() -> None:
    a = [9.5, 9.6, 9.4, 9.55, 9.45, 9.5, 9.52, 9.48]
    b = [6.6, 6.7, 6.65, 6.62, 6.68, 6.64, 6.66, 6.7]
    first = bootstrap_ratio(a, b, seed=7)
    assert first == bootstrap_ratio(a, b, seed=7)
    assert first != bootstrap_ratio(a, b, seed=8)
    assert first.low <= first.ratio <= first.high < 1
    assert first.ratio == pytest.approx(sum(b) / sum(a))


def test_a_noisy_sample_gives_a_wide_interval() -> None:
    a = [1.0, 2.0, 3.0]
    b = [1.5, 2.5, 1.0]
    interval = bootstrap_ratio(a, b, seed=0)
    assert interval.low < 1 < interval.high


def test_bootstrap_refuses_empty_or_zero_baselines() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        bootstrap_ratio([], [1.0])
    with pytest.raises(ValueError, match="positive"):
        bootstrap_ratio([0.0, 0.0], [1.0])
