"""Per-turn retention chosen by simulated annealing under a token budget (pure).

Each older turn ("segment") keeps a prefix of its sentences ordered by importance per
token, so choosing how many it keeps is choosing its retention ratio. The objective is
the importance kept (PageRank scores) plus the IDF mass of the distinct terms kept:
the second part is what makes the problem more than a knapsack, since a fact and its
echo two turns later share their rare terms and keeping both buys little. Annealing
starts from the better of two greedy solutions (best importance per token first; best
marginal value per token first, coverage included) and only ever returns a plan that
fits the budget and is at least as good as either.

Deterministic for a seed: one ``random.Random(seed)`` drives every choice.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

COVERAGE_WEIGHT = 1.0
"""Value of covering a sentence's worth of new terms, relative to a sentence of mean score."""
STEPS_PER_SEGMENT = 4
"""Annealing moves per older turn: the coverage-aware greedy start leaves only its margins
to settle (at 500 turns, 4,000 moves from it gained nothing over 1,000)."""
MAX_STEPS = 1_000
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
        # Ids in first-seen order, assigned and looked up by C-level iteration (4,000
        # sentences at 500 turns).
        every = chain.from_iterable(chain.from_iterable(seg.terms for seg in segments))
        ids = {term: i for i, term in enumerate(dict.fromkeys(every))}
        lookup = ids.__getitem__
        self.terms = [[tuple(map(lookup, terms)) for terms in seg.terms] for seg in segments]
        self.weight = [0.0] * len(ids)
        for term, i in ids.items():
            self.weight[i] = COVERAGE_WEIGHT * idf.get(term, 0.0) / scale
        self.segments = segments
        self.empty_cost = sum(s.cost(0) for s in segments)
        self.reset()

    def reset(self) -> None:
        """Back to the empty plan (term ids and weights kept: they are the costly part)."""
        self.kept = [0] * len(self.segments)
        self.cost = self.empty_cost
        self.value = 0.0
        self.covered = [0] * len(self.weight)

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


def _greedy_importance(state: _State, target: int) -> None:
    """Grow the plan by importance per token alone, the whole history's sentences ranked
    once (a segment stops at its first sentence that is out of rank order or too big)."""
    order = sorted(
        (-(seg.scores[k] / max(1, seg.tokens[k])), t, k)
        for t, seg in enumerate(state.segments)
        for k in range(len(seg.scores))
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


def _greedy(state: _State, target: int) -> None:
    """Grow the plan by the best value per token next, counting only terms not yet
    covered (lazy greedy: a sentence's gain can only fall as coverage grows, so a stale
    heap entry is re-scored and pushed back rather than all entries after every pick).
    Starting the annealer here, rather than from importance alone, leaves it far less to
    find, so it needs far fewer moves."""
    heap: list[tuple[float, int]] = []
    for t, seg in enumerate(state.segments):
        if seg.scores:
            extra, gain = state.grow_delta(t)
            heap.append((-gain / max(1, extra), t))
    heapq.heapify(heap)
    while heap:
        _, t = heapq.heappop(heap)
        extra, gain = state.grow_delta(t)
        density = -gain / max(1, extra)
        if heap and density > heap[0][0]:
            heapq.heappush(heap, (density, t))
            continue
        if state.cost + extra > target:
            continue
        state.grow(t)
        if state.kept[t] < len(state.segments[t].scores):
            extra, gain = state.grow_delta(t)
            heapq.heappush(heap, (-gain / max(1, extra), t))


def allocate(
    segments: Sequence[Segment], idf: Mapping[str, float], target: int, *, seed: int = 0
) -> tuple[int, ...]:
    """How many sentences each segment keeps so that the total cost is within ``target``.

    When even keeping nothing costs more than ``target`` (messages with images), every
    segment keeps nothing; the caller then has to shed images.
    """
    informative = [
        sum([idf.get(term, 0.0) for term in terms]) for seg in segments for terms in seg.terms
    ]
    scale = (sum(informative) / len(informative)) if informative else 1.0
    # Two greedy plans, the better one the start: coverage-aware is usually ahead by far,
    # but neither dominates the other on every input.
    state = _State(segments, idf, scale or 1.0)
    _greedy_importance(state, target)
    plain_value, plain_kept = state.value, list(state.kept)
    state.reset()
    _greedy(state, target)
    if plain_value > state.value + 1e-12:
        state.reset()
        for t, count in enumerate(plain_kept):
            for _ in range(count):
                state.grow(t)
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
