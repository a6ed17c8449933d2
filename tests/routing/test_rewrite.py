"""Model-name rewriting and stream repair, bytes in, bytes out (no sockets)."""

from __future__ import annotations

import json

from qwend.routing.rewrite import StreamEditor, request_for_backend, response_with_model


def test_request_model_is_substituted_in_place() -> None:
    body = b'{"messages": [{"role": "user", "content": "say \\"model\\": \\"x\\""}], "model": "x"}'
    out = request_for_backend(body, "x", "Org/Name")
    assert out == body.replace(b'"model": "x"}', b'"model":"Org/Name"}')
    assert json.loads(out)["model"] == "Org/Name"
    assert json.loads(out)["messages"] == json.loads(body)["messages"]


def test_request_with_the_backend_name_already_is_untouched() -> None:
    body = b'{"model": "same", "prompt": "p"}'
    assert request_for_backend(body, "same", "same") is body


def test_ambiguous_or_escaped_requests_are_re_encoded() -> None:
    # a tool schema with its own "model" default: two matches, so the parsed document decides
    body = json.dumps(
        {"tools": [{"parameters": {"model": "x"}}], "model": "x", "prompt": "é"}
    ).encode()
    out = json.loads(request_for_backend(body, "x", "y"))
    assert out["model"] == "y" and out["tools"][0]["parameters"]["model"] == "x"
    escaped = b'{"model": "\\u0078", "prompt": "p"}'
    assert json.loads(request_for_backend(escaped, "x", "y")) == {"model": "y", "prompt": "p"}


def test_response_model_becomes_the_public_name() -> None:
    content = b'{"content":"\\"model\\":\\"z\\""}'
    body = b'{"id":"c","model":"Org/Name@main","choices":[{"message":' + content + b"}]}"
    out = response_with_model(body, "qwen")
    assert json.loads(out)["model"] == "qwen"
    assert json.loads(out)["choices"] == json.loads(body)["choices"]
    assert response_with_model(b'{"id": "c"}', "qwen") == b'{"id": "c"}'
    same = b'{"model":"qwen"}'
    assert response_with_model(same, "qwen") is same


def event(doc: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def test_stream_lines_are_edited_whole_even_when_split_across_chunks() -> None:
    editor = StreamEditor("qwen", want_usage=False, prompt_tokens=3)
    raw = event({"id": "x", "model": "Org/Name@main", "choices": [{"delta": {"content": "hi"}}]})
    first, second = raw[:20], raw[20:]
    assert editor.feed(first) == b""  # half a line waits for the rest
    out = editor.feed(second) + editor.finish(complete=True)
    lines = [ln for ln in out.split(b"\n\n") if ln]
    assert json.loads(lines[0][6:])["model"] == "qwen"
    assert lines[1] == b"data: [DONE]"


def test_usage_is_added_only_when_asked_and_missing() -> None:
    editor = StreamEditor("qwen", want_usage=True, prompt_tokens=7)
    for i in range(3):
        delta = {"delta": {"content": f"t{i}"}}
        kind = "chat.completion.chunk"
        editor.feed(
            event({"id": "c1", "created": 5, "object": kind, "model": "m", "choices": [delta]})
        )
    editor.feed(event({"id": "c1", "model": "m", "choices": [{"delta": {}}], "usage": None}))
    tail = editor.finish(complete=True).split(b"\n\n")
    usage = json.loads(tail[0][6:])
    assert usage["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert usage["qwend_usage_estimated"] is True
    assert (usage["id"], usage["created"], usage["model"], usage["choices"]) == (
        "c1",
        5,
        "qwen",
        [],
    )
    assert tail[1] == b"data: [DONE]"

    honest = StreamEditor("qwen", want_usage=True, prompt_tokens=7)
    honest.feed(event({"id": "c", "model": "m", "choices": [], "usage": {"prompt_tokens": 1}}))
    honest.feed(b"data: [DONE]\n\n")
    assert honest.finish(complete=True) == b""


def test_a_broken_stream_gets_no_done_and_a_dangling_line_is_ended() -> None:
    editor = StreamEditor(None, want_usage=True, prompt_tokens=1)
    assert editor.feed(b'data: {"model":"m"}') == b""
    assert editor.finish(complete=False) == b'data: {"model":"m"}\n\n'


def test_done_counts_only_at_the_start_of_a_line() -> None:
    editor = StreamEditor("qwen", want_usage=False, prompt_tokens=1)
    editor.feed(event({"model": "m", "choices": [{"delta": {"content": "data: [DONE]"}}]}))
    assert editor.finish(complete=True) == b"data: [DONE]\n\n"
    ended = StreamEditor("qwen", want_usage=False, prompt_tokens=1)
    ended.feed(event({"model": "m", "choices": []}) + b"data: [DONE]\n\n")
    assert ended.finish(complete=True) == b""
