"""Index terms of a sentence for similarity (pure).

Latin words are lower-cased and lose a plural ``s``; numbers are terms of their own
(a planted fact is often a number); Chinese has no spaces, so CJK runs give character
bigrams, the usual unit of Chinese retrieval without a word segmenter (a one-character
run gives its character). Very common English words carry no topic and are skipped.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")
TERMS_CACHE_SIZE = 65_536
"""Sentences whose terms are remembered."""
_CJK_STOP = frozenset("的了是在我你他她它们这那就也和与都而及着吗呢吧啊")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "our",
        "their",
        "do",
        "does",
        "did",
        "done",
        "have",
        "has",
        "had",
        "not",
        "no",
        "so",
        "than",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "just",
        "very",
        "also",
        "too",
        "about",
        "into",
        "over",
        "out",
        "up",
        "down",
        "all",
        "any",
        "some",
        "such",
        "more",
        "most",
        "other",
        "only",
        "own",
        "same",
        "again",
        "once",
        "let",
        "lets",
        "ok",
        "yes",
        "im",
        "ive",
        "youre",
        "dont",
        "thats",
    ]
)


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=TERMS_CACHE_SIZE)
def sentence_terms(text: str) -> tuple[str, ...]:
    """The index terms of ``text``, with repetitions, in order (memoised, like splitting)."""
    terms: list[str] = []
    for match in _TOKEN.finditer(text):
        run = match.group()
        if match.lastgroup == "cjk":
            chars = [c for c in run if c not in _CJK_STOP] if len(run) > 2 else list(run)
            if len(chars) == 1:
                terms.append(chars[0])
            terms.extend(a + b for a, b in itertools.pairwise(chars))
            continue
        word = run.lower()
        if word.isdigit() or (len(word) > 1 and word not in STOPWORDS):
            terms.append(_stem(word))
    return tuple(terms)


@lru_cache(maxsize=TERMS_CACHE_SIZE)
def term_set(terms: tuple[str, ...]) -> frozenset[str]:
    """The distinct terms of a sentence's terms (memoised: the planner asks every call)."""
    return frozenset(terms)
