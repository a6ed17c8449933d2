"""Weighted PageRank by power iteration over a sparse graph (pure python).

The graphs here are sentence graphs of a conversation: a few thousand nodes and a
few tens of thousands of weighted edges. Power iteration on adjacency lists costs
O(edges) per step and converges in a few dozen steps, a few milliseconds in pure
Python, so numpy (not a runtime dependency) would buy little.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul, sub

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
    # Both hops as per-row dot products over flat tuples, evaluated by map/sum in C: the
    # walk is the hot loop of a 500-turn history, and this is several times faster than
    # scattering edge by edge in Python.
    hub_total = [0.0] * hubs
    for edges in links:
        for h, w in edges:
            if w > 0:
                hub_total[h] += w
    hub_nodes: list[list[int]] = [[] for _ in range(hubs)]
    hub_share: list[list[float]] = [[] for _ in range(hubs)]
    node_hubs: list[tuple[int, ...]] = []
    node_share: list[tuple[float, ...]] = []
    dangling: list[int] = []
    for i, edges in enumerate(links):
        live = [(h, w) for h, w in edges if w > 0]
        total = sum(w for _, w in live)
        if not live:
            dangling.append(i)
        for h, w in live:
            hub_nodes[h].append(i)
            hub_share[h].append(w / total)
        node_hubs.append(tuple(h for h, _ in live))
        node_share.append(tuple(damping * w / hub_total[h] for h, w in live))
    into = list(zip(hub_nodes, hub_share, strict=True))
    back = list(zip(teleport, node_hubs, node_share, strict=True))
    scores = list(teleport)
    for _ in range(max_iterations):
        at = scores.__getitem__
        mass = [sum(map(mul, map(at, nodes), shares)) for nodes, shares in into]
        base = 1.0 - damping + damping * sum(map(at, dangling))
        of = mass.__getitem__
        nxt = [base * t + sum(map(mul, map(of, hs), qs)) for t, hs, qs in back]
        change = sum(map(abs, map(sub, nxt, scores)))
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
