"""Seed cases, suites, request mixes and the open-loop schedule."""

from __future__ import annotations

import itertools
import statistics

import pytest

from qwend.bench.scenarios import (
    SEED_CASES,
    SEED_FIGURES,
    SUITES,
    Arrival,
    RequestShape,
    ScenarioError,
    make_load,
    parse_mix,
    resolve,
    seed_figure,
)


def test_the_seed_cases_have_the_seed_tables_request_counts() -> None:
    counts = {name: len(case.requests) for name, case in SEED_CASES.items()}
    assert counts["concurrency_8"] == 8
    assert counts["mm_concurrency_4"] == 4
    assert counts["router_4text32_2mm8"] == 6
    assert [s.image for s in SEED_CASES["router_3text8_2mm8"].requests].count(True) == 2
    assert SEED_CASES["stream_text_8"].requests[0].stream
    assert set(SUITES["seed"]) == set(SUITES["seed-lane"]) | set(SUITES["seed-router"])
    # every case has a figure in the seed, in its column
    for name in SUITES["seed-lane"]:
        assert all(name in SEED_FIGURES[v] for v in ("baseline", "recurrent_v2", "v3"))
    for name in SUITES["seed-router"]:
        assert name in SEED_FIGURES["router"]


def test_resolve_expands_suites_keeps_order_and_names_the_known_cases() -> None:
    names = [c.name for c in resolve(["text_8", "seed-router", "text_8"])]
    assert names == ["text_8", *SUITES["seed-router"]]
    with pytest.raises(ScenarioError, match=r"unknown scenario 'text_9'.*concurrency_8"):
        resolve(["text_9"])


def test_seed_figure_picks_the_column_of_the_serving_variant_or_the_router() -> None:
    assert seed_figure("concurrency_8", frozenset({"baseline"}), False) == (9.542, 9.542)
    assert seed_figure("concurrency_8", frozenset({"baseline", "v3"}), False) is None
    assert seed_figure("router_2text8_2mm8", frozenset({"v3", "baseline"}), True) == (1.173, 1.173)
    assert seed_figure("text_8", frozenset({"chunk_v2"}), False) is None


def test_parse_mix() -> None:
    mix = parse_mix("text_8=3, mm_8, text-200-64=0.5")
    assert mix == (
        (RequestShape(8), 3.0),
        (RequestShape(8, image=True), 1.0),
        (RequestShape(64, prompt_words=200), 0.5),
    )
    for bad, message in (
        ("", "empty"),
        ("text_8=x", "weight must be a number"),
        ("text_8=-1", "weight must be positive"),
        ("concurrency_8", "expected text_8"),
        ("text-10-0", "expected text_8"),
    ):
        with pytest.raises(ScenarioError, match=message):
            parse_mix(bad)


def test_poisson_schedule_is_seeded_and_has_the_rate() -> None:
    load = make_load(50, 20, Arrival.POISSON, "text_8=1,mm_8=1", seed=3)
    plan = load.schedule()
    assert plan == make_load(50, 20, Arrival.POISSON, "text_8=1,mm_8=1", seed=3).schedule()
    assert plan != make_load(50, 20, Arrival.POISSON, "text_8=1,mm_8=1", seed=4).schedule()
    assert 900 < len(plan) < 1100  # 1000 expected, Poisson sd ~32
    assert all(0 < at < 20 for at, _ in plan)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(plan)]
    assert statistics.fmean(gaps) == pytest.approx(0.02, rel=0.1)
    images = sum(1 for _, shape in plan if shape.image)
    assert 0.4 < images / len(plan) < 0.6


def test_constant_schedule_and_bad_parameters() -> None:
    plan = make_load(4, 1, Arrival.CONSTANT, "text_8").schedule()
    assert [round(at, 6) for at, _ in plan] == [0.25, 0.5, 0.75]
    with pytest.raises(ScenarioError, match="--rate must be positive"):
        make_load(0, 1, Arrival.CONSTANT, "text_8")
    with pytest.raises(ScenarioError, match="--duration must be positive"):
        make_load(1, -1, Arrival.CONSTANT, "text_8")
