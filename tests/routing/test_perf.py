"""The learned lane model: prefill and decode fits, decode curve, cost, efficient concurrency."""

from __future__ import annotations

import pytest

from qwend.routing.perf import LanePerf


def test_lane_perf_learns_decode_slope() -> None:
    perf = LanePerf()
    # A lane whose decode time per token is 0.02 + 0.01*n.
    for _ in range(20):
        for n in (1, 2, 4, 8):
            perf.observe_itl(0.02 + 0.01 * n, n)
    assert perf.itl(1) == pytest.approx(0.03, rel=0.05)
    assert perf.itl(8) == pytest.approx(0.10, rel=0.05)


def test_lane_perf_learns_prefill() -> None:
    perf = LanePerf()
    for _ in range(50):
        perf.observe_ttft(prompt_tokens=36, ttft=0.2, concurrency=1)
    assert perf.ttft(36, 1) == pytest.approx(0.2, rel=0.1)


def test_lane_perf_from_totals() -> None:
    perf = LanePerf(prefill_s_per_token=0.0, prefill_slope=0.0)
    for _ in range(60):
        perf.observe_total(10, 100, e2e=3.0, concurrency=1)
    assert perf.itl(1) == pytest.approx(0.03, rel=0.1)
    perf.observe_total(10, 0, e2e=3.0, concurrency=1)  # no usage: ignored


def test_lane_perf_slope_never_negative_and_fit_stays_defined() -> None:
    perf = LanePerf()
    for _ in range(100):
        perf.observe_itl(0.05, 3)  # all samples at one concurrency
    assert perf.itl(3) == pytest.approx(0.05, rel=0.1)
    assert perf.itl(10) >= perf.itl(3)
    assert perf.view().itl_slope >= 0


def test_cost_prefers_faster_lane_and_counts_slowdown() -> None:
    fast, slow = LanePerf(itl_s=0.02), LanePerf(itl_s=0.05)
    assert fast.cost(10, 64, 0, 0) < slow.cost(10, 64, 0, 0)
    busy = LanePerf(itl_s=0.02, itl_slope=0.01)
    assert busy.cost(10, 64, 3, 500) > busy.cost(10, 64, 3, 0)


def test_lane_perf_follows_a_knee() -> None:
    perf = LanePerf()
    for _ in range(30):
        for n in range(1, 9):
            perf.observe_itl(0.1 * (1 + 0.35 * max(0, n - 4)), n)
    assert perf.itl(1) == pytest.approx(0.1, rel=0.05)
    assert perf.itl(4) == pytest.approx(0.1, rel=0.05)
    assert perf.itl(8) == pytest.approx(0.24, rel=0.05)
    assert perf.itl(6.5) == pytest.approx(0.1875, rel=0.05)  # between levels: interpolated
    assert perf.itl(12) > perf.itl(8)  # beyond the table: the line's slope


def test_lane_perf_curve_is_never_decreasing() -> None:
    perf = LanePerf()
    for _ in range(30):
        perf.observe_itl(0.2, 2)  # noisy: slower at 2 than at 3
        perf.observe_itl(0.1, 3)
        perf.observe_itl(0.3, 5)
    values = [perf.itl(n) for n in range(1, 17)]
    assert values == sorted(values)
    assert values[1] == pytest.approx(0.15, rel=0.1)  # levels 2 and 3 pooled


def test_lane_perf_splits_fractional_concurrency() -> None:
    perf = LanePerf()
    for _ in range(40):
        perf.observe_itl(0.1, 1)
        perf.observe_itl(0.3, 3)
        perf.observe_itl(0.2, 2.5)  # half to level 2, half to level 3
    assert perf.itl(1) < perf.itl(2) < perf.itl(3)


def test_cost_prices_long_requests_at_the_batch_they_will_see() -> None:
    perf = LanePerf()
    for _ in range(30):
        for n in range(1, 9):
            perf.observe_itl(0.1 * (1 + 0.35 * max(0, n - 4)), n)
    now = perf.cost(20, 256, 0, 0)
    later = perf.cost(20, 256, 0, 0, horizon=1.0, reach=8)
    assert later == pytest.approx(now + 256 * (perf.itl(8) - perf.itl(1)), rel=1e-6)


def _knee(slope: float) -> LanePerf:
    perf = LanePerf()
    for _ in range(30):
        for n in range(1, 9):
            perf.observe_itl(0.1 * (1 + slope * max(0, n - 4)), n)
    return perf


def test_efficient_concurrency_is_where_the_token_rate_stops_rising() -> None:
    # 0.35 per sequence past 4 (the seed's baseline): 4 sequences give 40 tokens/s,
    # 5 give 37: the lane is most productive at 4.
    assert _knee(0.35).efficient_concurrency(8) == 4
    # 0.14 (v3): the rate still rises at 8, so the admission limit is the bound.
    assert _knee(0.14).efficient_concurrency(8) == 8
    assert _knee(0.14).efficient_concurrency(6) == 6
    # 0.3: a fifth sequence costs each one 30% more, more than it adds.
    assert _knee(0.3).efficient_concurrency(8) == 4


def test_efficient_concurrency_of_an_unmeasured_lane_is_its_limit() -> None:
    assert LanePerf().efficient_concurrency(8) == 8
    assert LanePerf().efficient_concurrency(32) == 32
    assert LanePerf().view(8).efficient_concurrency == 8


def test_efficient_concurrency_needs_samples_at_the_saturated_level() -> None:
    perf = LanePerf()
    for _ in range(30):
        for n in range(1, 4):  # only ever measured up to 3, rate still rising there
            perf.observe_itl(0.1, n)
    assert perf.efficient_concurrency(8) == 8


def test_efficient_concurrency_follows_new_samples() -> None:
    perf = _knee(0.35)
    assert perf.efficient_concurrency(8) == 4
    for _ in range(200):  # the lane was replaced by one that batches well
        for n in range(1, 9):
            perf.observe_itl(0.1, n)
    assert perf.efficient_concurrency(8) == 8


def test_short_answers_do_not_teach_the_decode_model() -> None:
    perf = LanePerf()
    for n in range(1, 9):  # image answers: two tokens after a long prefill
        for _ in range(10):
            perf.observe_total(280, 2, 0.6 * n, n)
    assert perf.samples == 0
    assert perf.efficient_concurrency(8) == 8
    perf.observe_total(24, 16, 2.0, 1)
    assert perf.samples == 1
