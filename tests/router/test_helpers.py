"""Pure helpers of the router's HTTP layer: error bodies, usage scanning, failures."""

from __future__ import annotations

import json

import pytest

from qwend.router.proxy import (
    Failure,
    connection_failure,
    error_body,
    error_event,
    error_response,
    usage_counts,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 16}}', (12, 16)),
        (b'data: {"usage":{"prompt_tokens":3,"total_tokens":9,"completion_tokens":6}}\n\n', (3, 6)),
        (b'{"usage": {"completion_tokens": 7}}', (0, 7)),
        (b'{"usage": null}', (0, 0)),
        (b"no usage here", (0, 0)),
        (b'{"usage": {"prompt_tokens": "x"}}', (0, 0)),
    ],
)
def test_usage_counts(data: bytes, expected: tuple[int, int]) -> None:
    assert usage_counts(data) == expected


def test_usage_counts_takes_the_last_usage() -> None:
    data = (
        b'"usage": {"prompt_tokens": 1, "completion_tokens": 1} '
        b'"usage": {"prompt_tokens": 2, "completion_tokens": 3}'
    )
    assert usage_counts(data) == (2, 3)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (429, "rate_limit_error"),
        (503, "service_unavailable_error"),
        (500, "server_error"),
        (418, "invalid_request_error"),
    ],
)
def test_error_body_is_openai_shaped(status: int, kind: str) -> None:
    doc = json.loads(error_body(status, "what happened", param="p", code="c"))
    assert doc == {"error": {"message": "what happened", "type": kind, "param": "p", "code": "c"}}


def test_error_response_sets_retry_after() -> None:
    resp = error_response(429, "full", retry_after=3)
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert resp.content_type == "application/json"


def test_error_event_is_one_sse_event() -> None:
    event = error_event("broke")
    assert event.startswith(b"data: ") and event.endswith(b"\n\n") and event.count(b"\n\n") == 1
    assert json.loads(event[6:])["error"]["message"] == "broke"


def test_connection_failure_statuses() -> None:
    refused = connection_failure("a", ConnectionRefusedError("refused"), "to connect")
    assert refused.status == 502 and refused.retryable and refused.breaker_failure
    assert "lane 'a' failed to connect: refused" in json.loads(refused.body)["error"]["message"]
    late = connection_failure("a", TimeoutError(), "within the timeout")
    assert late.status == 504 and "TimeoutError" in late.body.decode()


def test_failure_response_keeps_the_lanes_error() -> None:
    failure = Failure("b", 503, b'{"error": {"message": "busy"}}', "application/json", True, True)
    resp = failure.response(attempts=3)
    assert resp.status == 503 and resp.body == b'{"error": {"message": "busy"}}'
    assert resp.headers["X-Qwend-Lane"] == "b" and resp.headers["X-Qwend-Attempts"] == "3"
    assert resp.headers["Retry-After"] == "1"
