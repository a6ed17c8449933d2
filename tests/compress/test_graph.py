"""Sentence importance: the memoised term counts change speed, never scores."""

from __future__ import annotations

from qwend.compress import graph
from qwend.compress.terms import TERMS_CACHE_SIZE, sentence_terms, term_set

SENTENCES = [
    "The access code for the Korvath depot is 48213.",
    "I spent the morning hiking with Anna.",
    "Anna thinks the Korvath trip is too long.",
    "We might move the meeting to Friday if Tom agrees.",
    "库尔瓦特仓库的门禁密码是48213。",
    "我和安娜一起去爬山了。",
]


def test_scores_are_the_same_with_a_cold_and_a_warm_cache() -> None:
    terms = [sentence_terms(s) for s in SENTENCES]
    recent = [False] * (len(terms) - 1) + [True]
    graph._term_counts.cache_clear()
    cold = graph.sentence_scores(terms, recent)
    assert graph._term_counts.cache_info().misses == len(set(terms))
    warm = graph.sentence_scores(terms, recent)
    assert graph._term_counts.cache_info().hits >= len(terms)
    assert warm == cold
    assert len(cold[0]) == len(SENTENCES)


def test_the_term_count_cache_is_bounded() -> None:
    assert graph._term_counts.cache_info().maxsize == TERMS_CACHE_SIZE


def test_term_counts_keep_first_seen_order_and_multiplicity() -> None:
    assert graph._term_counts(("b", "a", "b")) == (("b", 2), ("a", 1))


def test_the_memoised_term_set_is_the_set_of_terms_and_bounded() -> None:
    terms = sentence_terms("Anna and Tom met Anna at the Korvath depot at 9.")
    assert term_set(terms) == frozenset(terms)
    assert term_set.cache_info().maxsize == TERMS_CACHE_SIZE
