"""Latency histograms: ``le`` buckets, cumulative views, one series per lane and class."""

from __future__ import annotations

from qwend.routing.histograms import Histogram, Measure, SeriesKey, TrafficHistograms


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    hist = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        hist.observe(value)
    view = hist.view()
    assert view.cumulative == (2, 4, 5)  # <=0.1, <=1.0, +Inf
    assert view.count == 5
    assert view.total == 0.05 + 0.1 + 0.5 + 1.0 + 7.0


def test_series_are_kept_per_lane_and_class_and_sorted() -> None:
    traffic = TrafficHistograms()
    b = SeriesKey("b", "stable", "v3", "short_text")
    a = SeriesKey("a", "throughput", "v3", "long_text")
    traffic.observe(b, Measure.TTFT, 0.2)
    traffic.observe(a, Measure.E2E, -1.0)  # a clock step never makes a negative bucket
    traffic.add_tokens(a, 10, 5)
    traffic.add_tokens(a, 3, 2)
    views = traffic.views()
    assert [v.key for v in views] == [a, b]
    assert views[0].prompt_tokens == 13 and views[0].completion_tokens == 7
    assert views[0].histograms[Measure.E2E].cumulative[0] == 1
    assert views[1].histograms[Measure.TTFT].count == 1
    assert views[1].histograms[Measure.E2E].count == 0


def test_a_lane_that_is_gone_or_changed_is_forgotten_and_the_others_kept() -> None:
    traffic = TrafficHistograms()
    kept = SeriesKey("stable", "stable", "baseline", "long_text")
    removed = SeriesKey("old", "throughput", "v3", "short_text")
    relabelled = SeriesKey("chunk", "stable", "chunk_v2", "short_text")
    for key in (kept, removed, relabelled):
        traffic.observe(key, Measure.E2E, 0.2)
        traffic.add_tokens(key, 10, 5)
    traffic.forget({("stable", "stable", "baseline"), ("chunk", "stable", "chunk_v3")})
    assert [view.key for view in traffic.views()] == [kept]
    assert traffic.views()[0].prompt_tokens == 10  # a kept series keeps counting from where it was
