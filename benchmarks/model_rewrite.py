"""What do model-name rewriting and stream repair cost per request and per SSE chunk?

The router's hot path adds, per request: ``request_for_backend`` (when the lane's backend
name differs from the public one), ``response_with_model`` on a JSON answer, and a
``StreamEditor.feed`` per SSE chunk of a stream. This times each on realistic bodies
(an OpenAI chat request, a 16-token answer, one-token SSE chunks) in process, with
``timeit``; the minimum of the repeats is reported (the least disturbed by other
processes on a shared machine), next to ``json.loads`` of the same bytes for scale.

    .venv/bin/python benchmarks/model_rewrite.py
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable

from qwend.routing.rewrite import StreamEditor, request_for_backend, response_with_model

REQUEST = json.dumps(
    {
        "model": "qwen",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. " * 20},
            {"role": "user", "content": "Tell me a short story about a cat. " * 10},
        ],
        "max_tokens": 256,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "Org/Qwen3.5-9B@main",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "word " * 256},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 256, "total_tokens": 376},
    }
).encode()
CHUNK = (
    b"data: "
    + json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "Org/Qwen3.5-9B@main",
            "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}],
        }
    ).encode()
    + b"\n\n"
)


def per_call_us(fn: Callable[[], object], number: int = 20_000, repeat: int = 7) -> float:
    """Microseconds per call: the best of ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    plain = StreamEditor("qwen", want_usage=False, prompt_tokens=120)
    usage = StreamEditor("qwen", want_usage=True, prompt_tokens=120)
    rows = [
        ("request, same name (no rewrite)", len(REQUEST),
         per_call_us(lambda: request_for_backend(REQUEST, "qwen", "qwen")), REQUEST),
        ("request, renamed to served_model", len(REQUEST),
         per_call_us(lambda: request_for_backend(REQUEST, "qwen", "Org/Qwen3.5-9B")), REQUEST),
        ("JSON answer, model replaced", len(ANSWER),
         per_call_us(lambda: response_with_model(ANSWER, "qwen")), ANSWER),
        ("SSE chunk, model replaced", len(CHUNK), per_call_us(lambda: plain.feed(CHUNK)), CHUNK),
        ("SSE chunk, + usage tracking", len(CHUNK), per_call_us(lambda: usage.feed(CHUNK)), CHUNK),
    ]  # fmt: skip
    print("| operation | bytes | us/call | json.loads of the same bytes, us | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, size, cost, data in rows:
        body = data[6:].strip() if data.startswith(b"data: ") else data
        parse = per_call_us(lambda body=body: json.loads(body))  # type: ignore[misc]
        print(f"| {name} | {size} | {cost:.2f} | {parse:.2f} | {cost / parse:.2f} |")


if __name__ == "__main__":
    main()
