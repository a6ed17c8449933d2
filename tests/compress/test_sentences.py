"""Sentence splitting: Chinese, English and mixed text; code, tables and URLs whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qwend.compress.sentences import join_spans, split_sentences


def texts(text: str) -> list[str]:
    return [s.text for s in split_sentences(text)]


def test_english_sentences_end_at_terminators_followed_by_space() -> None:
    text = "The lane is up. Is it fast? Yes! It serves 3.5 requests per second."
    assert texts(text) == [
        "The lane is up.",
        "Is it fast?",
        "Yes!",
        "It serves 3.5 requests per second.",
    ]


def test_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Ask Dr. Wang, e.g. about J. Smith's lanes. Then stop."
    assert texts(text) == ["Ask Dr. Wang, e.g. about J. Smith's lanes.", "Then stop."]


def test_chinese_sentences_need_no_space_and_keep_closing_quotes() -> None:
    text = "今天天气很好。我们去公园吧！“真的吗？”他问。好"
    assert texts(text) == ["今天天气很好。", "我们去公园吧！", "“真的吗？”", "他问。", "好"]


def test_mixed_chinese_and_english() -> None:
    text = "模型是Qwen3.5-9B。It runs on 910A. 延迟是0.9秒！OK"
    assert texts(text) == ["模型是Qwen3.5-9B。", "It runs on 910A.", "延迟是0.9秒！", "OK"]


def test_line_breaks_separate_list_items() -> None:
    assert texts("Steps:\n- start the lane\n- check it\n\nDone") == [
        "Steps:",
        "- start the lane",
        "- check it",
        "Done",
    ]


def test_a_fenced_code_block_is_one_atomic_unit() -> None:
    code = "```python\nx = 1. y = 2!\n\nprint(x)\n```"
    spans = split_sentences(f"Run this.\n{code}\nIt prints 1.")
    assert [s.text for s in spans] == ["Run this.", code, "It prints 1."]
    assert [s.atomic for s in spans] == [False, True, False]


def test_an_unclosed_code_block_runs_to_the_end() -> None:
    spans = split_sentences("Look:\n```\na. b. c.\nd")
    assert [s.text for s in spans] == ["Look:", "```\na. b. c.\nd"]


def test_a_table_is_one_unit() -> None:
    table = "| lane | p50 |\n|---|---|\n| v3. new | 0.9 s. |"
    assert texts(f"Figures:\n{table}\nThat is all.") == ["Figures:", table, "That is all."]


def test_urls_are_never_cut_but_trailing_punctuation_ends_the_sentence() -> None:
    text = "See https://example.org/a.b?x=1. Then www.example.com/v1.2! 详见https://x.cn/a.html。好"
    assert texts(text) == [
        "See https://example.org/a.b?x=1.",
        "Then www.example.com/v1.2!",
        "详见https://x.cn/a.html。",
        "好",
    ]


def test_join_keeps_line_breaks_and_spaces_and_adds_none_between_cjk() -> None:
    source = "First one. Second one.\nThird.\n第一句。第二句。"
    spans = split_sentences(source)
    assert join_spans(source, [spans[0], spans[2]]) == "First one.\nThird."
    assert join_spans(source, [spans[0], spans[1]]) == "First one. Second one."
    assert join_spans(source, [spans[3], spans[4]]) == "第一句。第二句。"


ALPHABET = st.sampled_from(
    [*list("ab 。.!?\n|`:/你好\t"), "https://x.io/a.b", "```", "e.g.", "Mr."]
)


@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_spans_are_ordered_trimmed_substrings_covering_all_text(text: str) -> None:
    spans = split_sentences(text)
    position = 0
    for span in spans:
        assert span.start >= position
        assert text[span.start : span.end] == span.text
        assert span.text == span.text.strip() and span.text
        position = span.end
    # Nothing but blanks is lost between spans.
    covered = "".join(s.text for s in spans)
    assert covered == "".join(text.split()) or "".join(covered.split()) == "".join(text.split())
