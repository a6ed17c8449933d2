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
    teleport = _teleport(n, personalization)
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


def pagerank_factored(
    links: Sequence[Sequence[tuple[int, float]]],
    hubs: int,
    personalization: Sequence[float] | None = None,
    *,
    damping: float = DAMPING,
    tolerance: float = TOLERANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> list[float]:
    """PageRank of a graph given in factored form: node i links to hubs (terms) with
    weights ``links[i]``, and a step goes node -> hub -> node, each hop in proportion to
    the weights. That is PageRank on the graph whose edge i -> j weighs
    ``sum_h (w_ih / W_i) * (w_jh / H_h)`` (W_i: i's total, H_h: h's total), without ever
    building its pairs: O(links) per step instead of O(n²).
    """
    n = len(links)
    if n == 0:
        return []
    teleport = _teleport(n, personalization)
    out: list[list[tuple[int, float]]] = []
    hub_total = [0.0] * hubs
    for edges in links:
        total = sum(w for _, w in edges if w > 0)
        out.append([(h, w / total) for h, w in edges if w > 0] if total > 0 else [])
        for h, w in edges:
            if w > 0:
                hub_total[h] += w
    into: list[list[tuple[int, float]]] = [[] for _ in range(hubs)]
    for i, edges in enumerate(links):
        for h, w in edges:
            if w > 0:
                into[h].append((i, damping * w / hub_total[h]))
    dangling = [i for i, edges in enumerate(out) if not edges]
    scores = list(teleport)
    for _ in range(max_iterations):
        mass = [0.0] * hubs
        for i, edges in enumerate(out):
            x = scores[i]
            for h, p in edges:
                mass[h] += x * p
        base = 1.0 - damping + damping * sum(scores[i] for i in dangling)
        nxt = [base * t for t in teleport]
        for h, m in enumerate(mass):
            for j, q in into[h]:
                nxt[j] += m * q
        change = sum(map(abs, map(float.__sub__, nxt, scores)))
        scores = nxt
        if change < tolerance:
            break
    return scores


def _teleport(n: int, personalization: Sequence[float] | None) -> list[float]:
    if personalization is None:
        return [1.0 / n] * n
    if len(personalization) != n:
        raise ValueError(f"personalization has {len(personalization)} entries for {n} nodes")
    if any(p < 0 for p in personalization):
        raise ValueError("personalization weights must not be negative")
    total = sum(personalization)
    return [p / total for p in personalization] if total > 0 else [1.0 / n] * n
