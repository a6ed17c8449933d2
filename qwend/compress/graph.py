"""Sentence importance: a BM25-weighted sentence graph ranked by PageRank (pure).

Two sentences are similar through the terms they share, each term weighted by BM25
(rare terms count more, a term counts less in a long sentence). The sentence graph is
kept in factored form, sentence -> term -> sentence, with edge weights the BM25 weights:
a two-step walk on it moves from sentence i to sentence j with probability proportional
to their shared BM25 mass, which is the TF-IDF similarity graph of TextRank without ever
building its n² pairs. That keeps a 500-turn history within milliseconds.

Two priors steer the random jumps (personalised PageRank): informative sentences (high
total IDF: names, numbers, rare words) and sentences of the recent turns, so older
sentences that the current conversation talks about rank high.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from qwend.compress.pagerank import pagerank_factored
from qwend.compress.terms import TERMS_CACHE_SIZE

BM25_K1 = 1.2
BM25_B = 0.75
TERMS_PER_SENTENCE = 12
"""Only a sentence's most specific terms link it (keeps the graph sparse and topical)."""
SCORE_TOLERANCE = 1e-3
"""L1 change at which the walk stops: scores are then within about 0.1 % of the limit in
total, far finer than the differences that decide what is kept."""
SPECIFICITY_SHARE = 0.5
"""Weight of a sentence's information (squared IDF mass) next to its PageRank centrality."""
RECENT_SHARE = 0.5
"""Share of the random jumps that land on sentences of the recent turns."""


@lru_cache(maxsize=TERMS_CACHE_SIZE)
def _term_counts(terms: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """Each distinct term of a sentence with its count, in first-seen order (memoised)."""
    return tuple(Counter(terms).items())


def idf_table(term_lists: Sequence[Sequence[str]]) -> dict[str, float]:
    """BM25's (always positive) inverse document frequency of every term."""
    n = len(term_lists)
    df: Counter[str] = Counter()
    for terms in term_lists:
        df.update(set(terms))
    return {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}


def bm25_weights(
    term_lists: Sequence[Sequence[str]], idf: dict[str, float]
) -> list[dict[str, float]]:
    """Each sentence's BM25 weight per distinct term."""
    lengths = [len(terms) for terms in term_lists]
    average = (sum(lengths) / len(lengths)) if lengths else 1.0
    average = average or 1.0
    weights: list[dict[str, float]] = []
    for terms, length in zip(term_lists, lengths, strict=True):
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average)
        weights.append(
            {t: idf[t] * tf * (BM25_K1 + 1.0) / (tf + norm) for t, tf in Counter(terms).items()}
        )
    return weights


def sentence_scores(
    term_lists: Sequence[Sequence[str]], recent: Sequence[bool]
) -> tuple[list[float], dict[str, float]]:
    """Importance of every sentence (mean 1.0) and the IDF table it used.

    ``recent[i]`` marks sentences of the verbatim recent turns: they are ranked too (they
    carry the current topic) though only older ones are ever dropped.
    """
    n = len(term_lists)
    if n == 0:
        return [], {}
    # One pass for document frequencies, one for BM25 weights, one for links: this runs on
    # every call over the whole history (4,000 sentences at 500 turns), so term counts are
    # memoised per sentence and the IDF table is built from the same frequencies.
    counts = [_term_counts(tuple(terms)) for terms in term_lists]
    df: Counter[str] = Counter()
    for pairs in counts:
        df.update([t for t, _ in pairs])
    idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    lengths = [len(terms) for terms in term_lists]
    average = (sum(lengths) / n) or 1.0
    k1 = BM25_K1 + 1.0
    # A term in one sentence links nothing; one in most sentences says nothing.
    most = max(2, n // 4)
    linking = {t for t, d in df.items() if 1 < d <= most}
    term_node: dict[str, int] = {}
    links: list[list[tuple[int, float]]] = []
    weights: list[dict[str, float]] = []
    for pairs, length in zip(counts, lengths, strict=True):
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average)
        w = {t: idf[t] * tf * k1 / (tf + norm) for t, tf in pairs}
        weights.append(w)
        top = sorted([(-x, t) for t, x in w.items() if t in linking])[:TERMS_PER_SENTENCE]
        links.append([(term_node.setdefault(t, len(term_node)), -x) for x, t in top])
    # A sentence's information is the squared IDF mass of its distinct terms (squared: one
    # rare name or number outweighs several everyday words); per token (how the
    # planner ranks), rare names and numbers are dense and template chatter is thin.
    # Informative sentences jump-start the walk; half of all jumps land on the recent
    # turns, the conversation's current topic.
    specific = [sum(idf[t] ** 2 for t in w) for w in weights]
    ranked = pagerank_factored(
        links, len(term_node), _split_mass(specific, recent), tolerance=SCORE_TOLERANCE
    )
    # TextRank alone favours central, hence repetitive, sentences; a chat history's worth
    # is as much in what was said once (a name, a number). Importance blends both.
    central = _mean_one(ranked)
    unique = _mean_one(specific)
    return [
        (1.0 - SPECIFICITY_SHARE) * c + SPECIFICITY_SHARE * u
        for c, u in zip(central, unique, strict=True)
    ], idf


def _mean_one(values: Sequence[float]) -> list[float]:
    total = sum(values)
    if total <= 0:
        return [1.0] * len(values)
    return [v * len(values) / total for v in values]


def _split_mass(specific: Sequence[float], recent: Sequence[bool]) -> list[float]:
    """Jump weights: ``RECENT_SHARE`` of the mass over recent sentences, the rest over all,
    each in proportion to specificity."""
    everywhere = sum(specific) or 1.0
    near = sum(s for s, r in zip(specific, recent, strict=True) if r)
    return [
        s * (1.0 - RECENT_SHARE) / everywhere + (s * RECENT_SHARE / near if r and near else 0.0)
        for s, r in zip(specific, recent, strict=True)
    ]
