"""PageRank on graphs whose scores are known."""

from __future__ import annotations

import pytest

from qwend.compress.pagerank import pagerank, pagerank_factored


def test_a_cycle_is_uniform() -> None:
    scores = pagerank([[(1, 1.0)], [(2, 1.0)], [(0, 1.0)]])
    assert scores == pytest.approx([1 / 3] * 3, abs=1e-6)


def test_two_nodes_pointing_one_way_match_the_closed_form() -> None:
    # Node 0 links to 1; node 1 is dangling and jumps uniformly. With d = 0.85:
    # p0 = (1-d)/2 + d*p1/2 and p0 + p1 = 1 give p0 = 0.5/1.425 = 1/2.85, p1 = 1.85/2.85.
    scores = pagerank([[(1, 1.0)], []])
    assert scores == pytest.approx([1 / 2.85, 1.85 / 2.85], abs=1e-6)


def test_the_centre_of_a_star_ranks_first() -> None:
    n = 6
    adjacency = [[(i, 1.0) for i in range(1, n)]] + [[(0, 1.0)] for _ in range(1, n)]
    scores = pagerank(adjacency)
    assert sum(scores) == pytest.approx(1.0)
    assert scores[0] > 0.45
    assert scores[1:] == pytest.approx([scores[1]] * (n - 1))


def test_heavier_edges_carry_more_rank() -> None:
    scores = pagerank([[(1, 3.0), (2, 1.0)], [(0, 1.0)], [(0, 1.0)]])
    assert scores[1] > scores[2]
    # 1 receives three quarters of 0's outflow, 2 one quarter: ratio of (teleport + inflow).
    teleport = 0.15 / 3
    assert (scores[1] - teleport) / (scores[2] - teleport) == pytest.approx(3.0, rel=1e-4)


def test_personalisation_pulls_rank_towards_its_nodes() -> None:
    chain = [[(1, 1.0)], [(0, 1.0), (2, 1.0)], [(1, 1.0)]]
    plain = pagerank(chain)
    biased = pagerank(chain, [0.0, 0.0, 1.0])
    assert plain[0] == pytest.approx(plain[2])
    assert biased[2] > biased[0]
    assert sum(biased) == pytest.approx(1.0)


def test_matches_networkx_style_reference_on_a_small_graph() -> None:
    # Reference values by dense power iteration of the Google matrix, written out here.
    adjacency = [[(1, 1.0), (2, 1.0)], [(2, 1.0)], [(0, 1.0)], [(2, 1.0)]]
    n, d = 4, 0.85
    reference = [1 / n] * n
    for _ in range(500):
        nxt = [(1 - d) / n] * n
        for i, edges in enumerate(adjacency):
            for j, _w in edges:
                nxt[j] += d * reference[i] / len(edges)
        reference = nxt
    assert pagerank(adjacency, tolerance=1e-12) == pytest.approx(reference, abs=1e-9)


def test_bad_inputs_are_refused() -> None:
    assert pagerank([]) == []
    with pytest.raises(ValueError, match="damping"):
        pagerank([[]], damping=1.0)
    with pytest.raises(ValueError, match="2 entries for 1 nodes"):
        pagerank([[]], [1.0, 2.0])
    with pytest.raises(ValueError, match="negative"):
        pagerank([[]], [-1.0])


def test_the_factored_walk_is_pagerank_on_the_similarity_graph() -> None:
    # Three sentences over two terms; the explicit graph has edge i -> j of weight
    # sum over terms h of (w_ih / W_i) * (w_jh / H_h), self-loops included.
    links = [[(0, 2.0), (1, 1.0)], [(0, 1.0)], [(1, 3.0)], []]
    hub_total = [3.0, 4.0]
    explicit = []
    for edges in links:
        total = sum(w for _, w in edges)
        row: dict[int, float] = {}
        for h, w in edges:
            for j, other in enumerate(links):
                for h2, w2 in other:
                    if h2 == h:
                        row[j] = row.get(j, 0.0) + (w / total) * (w2 / hub_total[h])
        explicit.append(sorted(row.items()))
    prior = [1.0, 2.0, 3.0, 4.0]
    expected = pagerank(explicit, prior, tolerance=1e-13)
    assert pagerank_factored(links, 2, prior, tolerance=1e-13) == pytest.approx(expected, abs=1e-9)
