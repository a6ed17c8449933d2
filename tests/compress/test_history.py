"""compress_history: budget, verbatim parts, extractive output, images, stability."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwend.compress import (
    Budget,
    CompressionResult,
    EstimatingCounter,
    compress_history,
    count_messages,
)
from qwend.compress.history import IMAGE_MARK
from tests.compress.conversations import conversation

COUNTER = EstimatingCounter()


def text_of(message: Any) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def test_a_history_within_budget_is_returned_as_is() -> None:
    messages = conversation(6)
    result = compress_history(messages, Budget(10_000))
    assert result.messages == tuple(messages)
    assert not result.compressed and result.within_budget
    assert result.tokens_before == result.tokens_after == count_messages(COUNTER, messages)
    assert [t.index for t in result.turns] == list(range(len(messages)))


def test_a_long_history_fits_and_keeps_the_system_prompt_and_recent_turns() -> None:
    messages = conversation(60, seed=3)
    budget = Budget(count_messages(COUNTER, messages) // 4, keep_recent_turns=4)
    result = compress_history(messages, budget)
    assert result.compressed and result.within_budget
    assert result.tokens_after <= budget.max_tokens
    assert result.tokens_after == count_messages(COUNTER, result.messages)
    assert result.messages[0] == messages[0]
    assert list(result.messages[-4:]) == messages[-4:]
    assert all(t.verbatim for t in result.turns[-4:])
    assert not any(t.verbatim for t in result.turns[1:-4])


def test_the_recent_turns_alone_over_budget_is_reported_and_older_turns_go() -> None:
    messages = conversation(20, seed=1)
    recent = count_messages(COUNTER, [messages[0], *messages[-4:]])
    result = compress_history(messages, Budget(recent - 5))
    assert not result.within_budget
    assert list(result.messages) == [messages[0], *messages[-4:]]
    assert result.tokens_after == recent


def test_a_planted_fact_that_the_last_turn_asks_about_survives() -> None:
    fact = "My locker code at the Bluefinch depot is 48213."
    messages = conversation(80, seed=5, facts={10: fact})
    messages.append({"role": "user", "content": "What is my locker code at the Bluefinch depot?"})
    result = compress_history(messages, Budget(count_messages(COUNTER, messages) // 5))
    assert result.within_budget
    assert any("48213" in text_of(m) for m in result.messages)
    assert fact in result.turns[11].kept


def test_image_parts_keep_their_reference() -> None:
    messages = conversation(40, seed=2)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages[3] = {
        "role": "user",
        "content": [{"type": "text", "text": text_of(messages[3])}, image],
    }
    result = compress_history(messages, Budget(count_messages(COUNTER, messages) // 3))
    assert result.within_budget
    sent = [m for m in result.messages if isinstance(m["content"], list)]
    assert len(sent) == 1 and image in sent[0]["content"]
    assert IMAGE_MARK not in result.turns[3].dropped


def test_images_go_only_as_a_last_resort() -> None:
    messages = conversation(10, seed=2)
    image = {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}
    messages[2] = {"role": "user", "content": [{"type": "text", "text": "Look."}, image]}
    verbatim = count_messages(COUNTER, [messages[0], *messages[-4:]])
    result = compress_history(messages, Budget(verbatim + 20))
    assert result.within_budget
    assert IMAGE_MARK in result.turns[2].dropped
    assert all(not isinstance(m["content"], list) for m in result.messages)


def test_tool_messages_are_sent_whole_or_not_at_all() -> None:
    messages = conversation(30, seed=4)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages[5] = {"role": "assistant", "content": None, "tool_calls": [call]}
    messages[6] = {"role": "tool", "tool_call_id": "c1", "content": "A long. Tool result."}
    result = compress_history(messages, Budget(count_messages(COUNTER, messages) // 2))
    assert messages[5] in result.messages and messages[6] in result.messages
    assert result.turns[6].verbatim


def test_the_same_input_and_seed_give_the_same_result() -> None:
    messages = conversation(120, seed=9)
    budget = Budget(count_messages(COUNTER, messages) // 4)
    first = compress_history(messages, budget, seed=7)
    assert compress_history(messages, budget, seed=7) == first


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="max_tokens must be a positive"):
        Budget(0)
    with pytest.raises(ValueError, match="keep_recent_turns must be 0 or more"):
        Budget(100, keep_recent_turns=-1)


def older_prefix(result: CompressionResult, upto: int) -> list[Any]:
    """Sent messages that came from input messages before ``upto``."""
    sent = []
    for report in result.turns:
        if report.index < upto and report.tokens_after:
            sent.append(report.kept)
    return sent


def test_turns_already_compressed_stay_the_same_as_the_history_grows() -> None:
    messages = conversation(140, seed=11)
    budget = Budget(count_messages(COUNTER, messages[:60]) // 3)
    previous = compress_history(messages[:60], budget)
    replans = 0
    for end in range(62, 141, 2):  # a request at each user turn
        result = compress_history(messages[:end], budget, previous=previous)
        assert result.within_budget and result.tokens_after <= budget.max_tokens
        # Every turn the previous call compressed reads the same now, unless re-planned.
        old = [r for r in previous.turns if not r.verbatim and r.index > 0]
        same = all(result.turns[r.index].kept == r.kept for r in old)
        replans += not same
        previous = result
    assert replans <= 4, f"{replans} re-plans in 40 requests"


EXTRACT_TEXT = st.lists(
    st.sampled_from(
        ["Alpha beta.", "Gamma 42!", "你好。", "世界？", "See https://a.io/x.y.", "\n", " ", "ok"]
    ),
    min_size=1,
    max_size=12,
).map("".join)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(EXTRACT_TEXT, min_size=2, max_size=14),
    st.integers(min_value=20, max_value=400),
    st.integers(min_value=0, max_value=4),
)
def test_output_is_extractive_in_order_and_never_over_budget_when_possible(
    texts: list[str], max_tokens: int, keep: int
) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]
    result = compress_history(messages, Budget(max_tokens, keep_recent_turns=keep))
    if result.within_budget:
        assert result.tokens_after <= max_tokens
    assert result.tokens_after == count_messages(COUNTER, result.messages)
    for report in result.turns:
        source = texts[report.index]
        position = 0
        for sentence in report.kept:
            found = source.find(sentence, position)
            assert found >= 0, (sentence, source)
            position = found + len(sentence)
    sent = iter(result.messages)
    for report in result.turns:
        if report.tokens_after:
            assert next(sent)["role"] == report.role


def test_coming_back_to_a_dropped_fact_brings_it_back() -> None:
    fact = "The spare key for the Korvath depot is in locker 48213."
    messages = conversation(90, seed=12, facts={20: fact})
    budget = Budget(count_messages(COUNTER, messages) // 8)
    previous = compress_history(messages, budget)
    assert fact not in previous.turns[21].kept  # this tight a budget has no room for it
    quiet = [*messages, {"role": "assistant", "content": "Anything else?"}]
    kept_quiet = compress_history(quiet, budget, previous=previous)
    assert fact not in kept_quiet.turns[21].kept  # nobody asked: the plan stands
    asked = [*quiet, {"role": "user", "content": "Where is the spare key for the Korvath depot?"}]
    result = compress_history(asked, budget, previous=kept_quiet)
    assert result.within_budget
    assert fact in result.turns[21].kept


def test_developer_messages_are_instructions_and_stay_whole() -> None:
    messages = conversation(30, seed=6)
    messages[0] = {"role": "developer", "content": "Be brief. Use metric units. Cite sources."}
    result = compress_history(messages, Budget(count_messages(COUNTER, messages) // 3))
    assert result.messages[0] == messages[0]
    assert result.turns[0].verbatim
