"""Request classification: multimodal detection, token estimates, validation."""

from __future__ import annotations

import pytest

from qwend.routing.classify import (
    IMAGE_TOKENS,
    InvalidRequest,
    RequestClass,
    classify_chat,
    classify_completion,
)
from qwend.tokens import MESSAGE_OVERHEAD_TOKENS, count_tokens


def chat(content: object, **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def test_text_chat() -> None:
    s = classify_chat(chat("hello there, how are you?", max_tokens=8))
    assert not s.multimodal and s.max_tokens == 8 and not s.stream
    assert s.prompt_tokens > 4
    assert s.request_class(32) is RequestClass.SHORT_TEXT
    assert s.model == "m"


@pytest.mark.parametrize("kind", ["image_url", "video_url", "input_image", "image", "video"])
def test_media_parts_make_it_multimodal(kind: str) -> None:
    parts = [{"type": "text", "text": "what is this"}, {"type": kind, kind: {"url": "data:,"}}]
    s = classify_chat(chat(parts, max_tokens=8))
    assert s.multimodal and s.request_class(32) is RequestClass.MULTIMODAL
    assert s.prompt_tokens >= IMAGE_TOKENS


def test_text_parts_only_is_text() -> None:
    s = classify_chat(chat([{"type": "text", "text": "hi"}]))
    assert not s.multimodal


def test_max_completion_tokens_wins_and_missing_is_long() -> None:
    s = classify_chat(chat("x", max_completion_tokens=100, max_tokens=4))
    assert s.max_tokens == 100 and s.request_class(32) is RequestClass.LONG_TEXT
    s = classify_chat(chat("x"))
    assert s.max_tokens is None and s.request_class(32) is RequestClass.LONG_TEXT
    assert s.expected_output == 256


def test_threshold_is_inclusive_for_long() -> None:
    assert classify_chat(chat("x", max_tokens=32)).request_class(32) is RequestClass.LONG_TEXT
    assert classify_chat(chat("x", max_tokens=31)).request_class(32) is RequestClass.SHORT_TEXT


def test_stream_and_include_usage() -> None:
    s = classify_chat(chat("x", stream=True, stream_options={"include_usage": True}))
    assert s.stream and s.include_usage
    assert not classify_chat(chat("x", stream=None)).stream


@pytest.mark.parametrize(
    "text",
    [
        "Tell me a short story about a cat who learns to fly, in three paragraphs.",
        "The quick brown fox jumps over the lazy dog. " * 20,
        "def f(x):\n    return [i * i for i in range(x) if i % 2]\n" * 5,
    ],
)
def test_estimate_is_close_to_the_shared_tokenizer(text: str) -> None:
    estimate = classify_chat(chat(text)).prompt_tokens - MESSAGE_OVERHEAD_TOKENS
    assert 0.5 <= estimate / count_tokens(text) <= 1.5


def test_non_ascii_counts_about_a_token_per_character() -> None:
    estimate = classify_chat(chat("你好世界" * 10)).prompt_tokens - MESSAGE_OVERHEAD_TOKENS
    assert estimate == 40


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ("text", None),
        ({"model": "m"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content"),
        (chat("x", max_tokens="8"), "max_tokens"),
        (chat("x", max_tokens=-1), "max_tokens"),
        (chat("x", max_tokens=True), "max_tokens"),
        (chat("x", stream="yes"), "stream"),
        (chat("x", model=5), "model"),
    ],
)
def test_invalid_chat_bodies(body: object, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        classify_chat(body)
    assert info.value.param == param
    assert info.value.message


def test_completions() -> None:
    s = classify_completion({"model": "m", "prompt": "once upon a time", "max_tokens": 64})
    assert s.max_tokens == 64 and not s.multimodal
    assert classify_completion({"prompt": ["a", "b"]}).max_tokens == 16
    assert classify_completion({"prompt": [1, 2, 3]}).prompt_tokens == 3
    bad: object
    for bad in ({}, {"prompt": 3}, {"prompt": []}, {"prompt": [1, "a"]}):
        with pytest.raises(InvalidRequest) as info:
            classify_completion(bad)
        assert info.value.param == "prompt"
    with pytest.raises(InvalidRequest):
        classify_completion(None)
