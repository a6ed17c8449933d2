"""Backend error bodies in the OpenAI shape (no sockets)."""

from __future__ import annotations

import json

import pytest

from qwend.routing.errorbody import MESSAGE_LIMIT, openai_error


def wrapped(status: int, body: bytes) -> dict[str, object]:
    out = openai_error(status, body, "stable")
    assert out is not None
    doc = json.loads(out)
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    error: dict[str, object] = doc["error"]
    return error


def test_openai_errors_are_kept_as_they_are() -> None:
    body = b'{"error": {"message": "bad", "type": "invalid_request_error", "code": 400}}'
    assert openai_error(400, body, "stable") is None


@pytest.mark.parametrize(
    ("status", "body", "message", "kind"),
    [
        (400, b'{"detail": "model not loaded"}', "model not loaded", "invalid_request_error"),
        (422, b'{"detail": [{"loc": ["body"], "msg": "x"}]}', '[{"loc":["body"],"msg":"x"}]',
         "invalid_request_error"),
        (500, b"Internal Server Error", "Internal Server Error", "server_error"),
        (404, b'{"error": "no such model"}', "no such model", "not_found_error"),
        (503, b"", "HTTP 503 with an empty body", "service_unavailable_error"),
        (502, b"<html><body>bad gateway</body></html>", "<html><body>bad gateway</body></html>",
         "server_error"),
    ],
)  # fmt: skip
def test_other_bodies_are_wrapped_keeping_their_text(
    status: int, body: bytes, message: str, kind: str
) -> None:
    error = wrapped(status, body)
    assert error["message"] == f"lane 'stable': {message}"
    assert error["type"] == kind


def test_long_bodies_are_cut() -> None:
    error = wrapped(500, b"x" * 10_000)
    assert isinstance(error["message"], str)
    assert len(error["message"]) < MESSAGE_LIMIT + 40
