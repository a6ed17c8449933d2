"""Per-turn retention chosen by simulated annealing under a token budget (pure).

Each older turn ("segment") keeps a prefix of its sentences ordered by importance per
token, so choosing how many it keeps is choosing its retention ratio. The objective is
the importance kept (PageRank scores) plus the IDF mass of the distinct terms kept:
the second part is what makes the problem more than a knapsack, since a fact and its
echo two turns later share their rare terms and keeping both buys little. Annealing
starts from the greedy solution (best importance per token first) and only ever
returns a plan that fits the budget and is at least as good as greedy.

Deterministic for a seed: one ``random.Random(seed)`` drives every choice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

COVERAGE_WEIGHT = 1.0
"""Value of covering a sentence's worth of new terms, relative to a sentence of mean score."""
STEPS_PER_SEGMENT = 12
"""Annealing moves per older turn: enough to settle the margins of the greedy plan."""
MAX_STEPS = 4_000
FINAL_TEMPERATURE_RATIO = 1e-3


@dataclass(frozen=True)
class Segment:
    """One older turn, its sentences in the order they would be kept."""

    scores: tuple[float, ...]
    tokens: tuple[int, ...]
    terms: tuple[frozenset[str], ...]
    fixed: int
    """Cost of sending the message at all (template overhead, images)."""
    always: bool = False
    """The message is sent even if it keeps no sentence (it carries images)."""

    def cost(self, kept: int) -> int:
        if kept == 0 and not self.always:
            return 0
        return self.fixed + sum(self.tokens[:kept])


class _State:
    """Kept counts, their cost and value, updated one sentence at a time.

    Terms become integer ids and coverage a list of counts: the annealer makes thousands
    of moves per call and this is its inner loop.
    """

    def __init__(self, segments: Sequence[Segment], idf: Mapping[str, float], scale: float):
        ids: dict[str, int] = {}
        self.terms = [
            [tuple(ids.setdefault(term, len(ids)) for term in terms) for terms in seg.terms]
            for seg in segments
        ]
        self.weight = [0.0] * len(ids)
        for term, i in ids.items():
            self.weight[i] = COVERAGE_WEIGHT * idf.get(term, 0.0) / scale
        self.segments = segments
        self.kept = [0] * len(segments)
        self.cost = sum(s.cost(0) for s in segments)
        self.value = 0.0
        self.covered = [0] * len(ids)

    def grow_delta(self, t: int) -> tuple[int, float]:
        seg, k = self.segments[t], self.kept[t]
        extra = seg.tokens[k] + (seg.fixed if k == 0 and not seg.always else 0)
        covered, weight = self.covered, self.weight
        gain = sum([weight[x] for x in self.terms[t][k] if not covered[x]])
        return extra, seg.scores[k] + gain

    def grow(self, t: int) -> None:
        extra, gain = self.grow_delta(t)
        covered = self.covered
        for x in self.terms[t][self.kept[t]]:
            covered[x] += 1
        self.kept[t] += 1
        self.cost += extra
        self.value += gain

    def shrink(self, t: int) -> None:
        seg = self.segments[t]
        self.kept[t] -= 1
        k = self.kept[t]
        covered, weight = self.covered, self.weight
        loss = 0.0
        for x in self.terms[t][k]:
            covered[x] -= 1
            if not covered[x]:
                loss += weight[x]
        self.cost -= seg.tokens[k] + (seg.fixed if k == 0 and not seg.always else 0)
        self.value -= seg.scores[k] + loss


def _greedy(state: _State, target: int) -> None:
    order = sorted(
        (
            (-(seg.scores[k] / max(1, seg.tokens[k])), t, k)
            for t, seg in enumerate(state.segments)
            for k in range(len(seg.scores))
        ),
    )
    blocked = [False] * len(state.segments)
    for _, t, k in order:
        if blocked[t] or k != state.kept[t]:
            blocked[t] = True
            continue
        extra, _ = state.grow_delta(t)
        if state.cost + extra <= target:
            state.grow(t)
        else:
            blocked[t] = True


def allocate(
    segments: Sequence[Segment], idf: Mapping[str, float], target: int, *, seed: int = 0
) -> tuple[int, ...]:
    """How many sentences each segment keeps so that the total cost is within ``target``.

    When even keeping nothing costs more than ``target`` (messages with images), every
    segment keeps nothing; the caller then has to shed images.
    """
    informative = [
        sum(idf.get(term, 0.0) for term in terms) for seg in segments for terms in seg.terms
    ]
    scale = (sum(informative) / len(informative)) if informative else 1.0
    state = _State(segments, idf, scale or 1.0)
    _greedy(state, target)
    best_value, best_kept = state.value, list(state.kept)
    growable = [t for t, seg in enumerate(segments) if seg.scores]
    if not growable or state.cost > target:
        return tuple(best_kept)
    rng = random.Random(seed)
    count = len(growable)
    steps = min(MAX_STEPS, STEPS_PER_SEGMENT * len(growable))
    start = max(
        1e-6, 0.5 * (sum(s for seg in segments for s in seg.scores) / max(1, len(informative)))
    )
    cooling = FINAL_TEMPERATURE_RATIO ** (1.0 / steps)
    temperature = start
    for _ in range(steps):
        temperature *= cooling
        before = state.value
        # random() scaled is several times cheaper than randrange in this inner loop.
        t = growable[int(rng.random() * count)]
        u = growable[int(rng.random() * count)]
        undo: list[tuple[str, int]] = []
        if state.kept[u] > 0 and u != t:
            state.shrink(u)
            undo.append(("grow", u))
        if state.kept[t] < len(segments[t].scores):
            extra, _ = state.grow_delta(t)
            if state.cost + extra <= target:
                state.grow(t)
                undo.append(("shrink", t))
        if not undo:
            continue
        delta = state.value - before
        if delta >= 0 or rng.random() < math.exp(delta / temperature):
            if state.value > best_value + 1e-12:
                best_value, best_kept = state.value, list(state.kept)
            continue
        for action, segment in reversed(undo):
            (state.grow if action == "grow" else state.shrink)(segment)
    return tuple(best_kept)


def plan_value(
    segments: Sequence[Segment], idf: Mapping[str, float], kept: Sequence[int]
) -> tuple[int, float]:
    """Cost and objective value of a plan (what ``allocate`` maximises), for tests."""
    informative = [
        sum(idf.get(term, 0.0) for term in terms) for seg in segments for terms in seg.terms
    ]
    scale = (sum(informative) / len(informative)) if informative else 1.0
    state = _State(segments, idf, scale or 1.0)
    for t, count in enumerate(kept):
        for _ in range(count):
            state.grow(t)
    return state.cost, state.value
