"""Simulated annealing of per-turn retention: budget, determinism, quality."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from qwend.compress.anneal import Segment, allocate, plan_value


def segments(seed: int, count: int = 30) -> tuple[list[Segment], dict[str, float]]:
    rng = random.Random(seed)
    vocabulary = [f"t{i}" for i in range(60)]
    idf = {t: rng.uniform(0.5, 4.0) for t in vocabulary}
    out = []
    for _ in range(count):
        size = rng.randint(1, 6)
        scores = sorted((rng.uniform(0.1, 3.0) for _ in range(size)), reverse=True)
        out.append(
            Segment(
                scores=tuple(scores),
                tokens=tuple(rng.randint(3, 30) for _ in range(size)),
                terms=tuple(frozenset(rng.sample(vocabulary, 4)) for _ in range(size)),
                fixed=4,
                always=rng.random() < 0.1,
            )
        )
    return out, idf


def greedy_value(segs: list[Segment], idf: dict[str, float], target: int) -> float:
    """Value of the plain greedy plan (best score per token first), as a reference."""
    order = sorted(
        (
            (-(s.scores[k] / s.tokens[k]), t, k)
            for t, s in enumerate(segs)
            for k in range(len(s.scores))
        )
    )
    kept = [0] * len(segs)
    blocked = [False] * len(segs)
    for _, t, k in order:
        if blocked[t] or k != kept[t]:
            blocked[t] = True
            continue
        trial = list(kept)
        trial[t] += 1
        if plan_value(segs, idf, trial)[0] <= target:
            kept = trial
        else:
            blocked[t] = True
    return plan_value(segs, idf, kept)[1]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 900))
@example(174, 20)  # coverage-aware greedy alone falls short of importance-only greedy here
def test_plans_fit_the_target_and_beat_or_match_greedy(seed: int, target: int) -> None:
    segs, idf = segments(seed)
    kept = allocate(segs, idf, target, seed=seed)
    cost, value = plan_value(segs, idf, kept)
    floor = sum(s.cost(0) for s in segs)
    assert cost <= max(target, floor)
    assert all(0 <= n <= len(s.scores) for n, s in zip(kept, segs, strict=True))
    assert value >= greedy_value(segs, idf, target) - 1e-9


def test_the_same_seed_gives_the_same_plan_and_another_may_differ() -> None:
    segs, idf = segments(1, count=80)
    plans = {allocate(segs, idf, 700, seed=s) for s in range(6)}
    assert allocate(segs, idf, 700, seed=3) == allocate(segs, idf, 700, seed=3)
    assert len(plans) >= 1


def test_annealing_improves_on_greedy_when_terms_overlap() -> None:
    # Two sentences that say the same thing (same rare terms) and one that says something
    # else: greedy takes the two best-scored twins, annealing sees that the second twin adds
    # no new terms and prefers the different one.
    idf = {"rare": 5.0, "code": 5.0, "other": 5.0, "topic": 5.0}
    twin = frozenset({"rare", "code"})
    segs = [
        Segment((1.0,), (10,), (twin,), fixed=0),
        Segment((0.99,), (10,), (twin,), fixed=0),
        Segment((0.9,), (10,), (frozenset({"other", "topic"}),), fixed=0),
    ]
    kept = allocate(segs, idf, 20, seed=0)
    assert kept in ((1, 0, 1), (0, 1, 1))
    assert plan_value(segs, idf, kept)[1] > greedy_value(segs, idf, 20)


def test_nothing_fits_keeps_nothing() -> None:
    segs, idf = segments(2, count=5)
    assert allocate(segs, idf, 0, seed=0) == (0, 0, 0, 0, 0)
