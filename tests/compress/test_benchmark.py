"""The compression benchmark's generator and baselines (the run itself is benchmarks/)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from qwend.compress import EstimatingCounter, count_messages
from tests.support.paths import REPO

BENCHMARK = REPO / "benchmarks" / "compression.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compression_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compression_benchmark"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("language", ["en", "zh", "mixed"])
def test_facts_are_planted_at_their_ages(bench: ModuleType, language: str) -> None:
    messages, facts = bench.conversation(language, 100, seed=1)
    assert len(messages) == 101 and messages[0]["role"] == "system"
    question_index = len(messages)  # the question is appended after the last message
    for fact in facts:
        holder = messages[question_index - fact.age]
        assert holder["role"] == "user"
        assert fact.statement in holder["content"]
        assert sum(fact.code in m["content"] for m in messages) == 1 + fact.echoed
    assert bench.conversation(language, 100, seed=1) == (messages, facts)


def test_baselines_keep_within_the_budget_and_their_shape(bench: ModuleType) -> None:
    messages, _ = bench.conversation("mixed", 100, seed=2)
    counter = EstimatingCounter()
    budget = count_messages(counter, messages) // 4
    window = bench.sliding_window(messages, budget, counter)
    ends = bench.first_and_last(messages, budget, counter)
    for sent in (window, ends):
        assert count_messages(counter, sent) <= budget
        assert sent[0] == messages[0]
    assert window[-1] == messages[-1] and window[1] != messages[1]
    assert ends[1] == messages[1] and ends[-4:] == messages[-4:]


def test_prefix_reuse_counts_the_common_start(bench: ModuleType) -> None:
    real = bench.RealCounter()
    a = [{"role": "system", "content": "x"}, {"role": "user", "content": "one two"}]
    b = [*a, {"role": "assistant", "content": "three"}]
    assert bench.prefix_reuse(a, b, real) == pytest.approx(
        (real.message(a[0]) + real.message(a[1])) / real.prompt(b)
    )
    assert bench.prefix_reuse([a[1]], b, real) == 0.0
