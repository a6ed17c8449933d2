"""Weighted PageRank by power iteration over a sparse graph (pure python).

The graphs here are sentence graphs of a conversation: a few thousand nodes and a
few tens of thousands of weighted edges. Power iteration on adjacency lists costs
O(edges) per step and converges in a few dozen steps, a few milliseconds in pure
Python, so numpy (not a runtime dependency) would buy little.
"""

from __future__ import annotations

from collections.abc import Sequence

DAMPING = 0.85
TOLERANCE = 1e-6
MAX_ITERATIONS = 100

Adjacency = Sequence[Sequence[tuple[int, float]]]
"""For each node, its out-edges as (target, weight > 0)."""


def pagerank(
    adjacency: Adjacency,
    personalization: Sequence[float] | None = None,
    *,
    damping: float = DAMPING,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> list[float]:
    """Stationary scores (summing to 1) of a random walk that follows edges in proportion
    to their weights with probability ``damping`` and otherwise jumps to a node drawn from
    ``personalization`` (uniform when None). A node without out-edges jumps the same way.

    Stops when the L1 change of a step is below ``tolerance``.
    """
    n = len(adjacency)
    if n == 0:
        return []
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    if personalization is None:
        teleport = [1.0 / n] * n
    else:
        if len(personalization) != n:
            raise ValueError(f"personalization has {len(personalization)} entries for {n} nodes")
        if any(p < 0 for p in personalization):
            raise ValueError("personalization weights must not be negative")
        total = sum(personalization)
        teleport = [p / total for p in personalization] if total > 0 else [1.0 / n] * n
    # Each edge carries its share of the source's out-weight, computed once.
    normalized: list[list[tuple[int, float]]] = []
    for edges in adjacency:
        out = sum(w for _, w in edges)
        normalized.append([(j, w / out) for j, w in edges if w > 0] if out > 0 else [])
    dangling = [i for i, edges in enumerate(normalized) if not edges]
    scores = list(teleport)
    for _ in range(max_iterations):
        leaked = damping * sum(scores[i] for i in dangling)
        base = 1.0 - damping + leaked
        nxt = [base * t for t in teleport]
        for i, edges in enumerate(normalized):
            share = damping * scores[i]
            if share:
                for j, w in edges:
                    nxt[j] += share * w
        change = sum(abs(a - b) for a, b in zip(nxt, scores, strict=True))
        scores = nxt
        if change < tolerance:
            break
    return scores
