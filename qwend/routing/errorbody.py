"""Backend error bodies in the OpenAI shape (pure).

Clients of qwend (the ``openai`` package first) expect every error as
``{"error": {"message", "type", "param", "code"}}``. Backends differ: vLLM and
llama.cpp answer that shape, FastAPI-based servers (transformers serve) answer
``{"detail": ...}``, others plain text or an HTML page. ``openai_error`` keeps an
OpenAI-shaped body as it is and wraps anything else, keeping the status (the caller's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

MESSAGE_LIMIT = 2048
"""Characters of a backend's own text kept in the wrapped message."""
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    """The OpenAI ``type`` of an error status."""
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def is_openai_error(doc: object) -> bool:
    """``{"error": {"message": str, ...}}``."""
    if not isinstance(doc, Mapping):
        return False
    inner = doc.get("error")
    return isinstance(inner, Mapping) and isinstance(inner.get("message"), str)


def _text_of(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _message(doc: object, raw: str) -> str:
    """The most telling text of a non-OpenAI body."""
    if isinstance(doc, Mapping):
        for key in ("detail", "error", "message", "msg"):
            if key in doc and doc[key] not in (None, ""):
                return _text_of(doc[key])
        return _text_of(doc)
    if isinstance(doc, str):
        return doc
    return raw


def openai_error(status: int, body: bytes, lane: str) -> bytes | None:
    """The body wrapped in the OpenAI error shape; None when it already has it."""
    raw = body.decode("utf-8", "replace").strip()
    try:
        doc: object = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    if is_openai_error(doc):
        return None
    text = _message(doc, raw).strip() or f"HTTP {status} with an empty body"
    if len(text) > MESSAGE_LIMIT:
        text = text[:MESSAGE_LIMIT] + "..."
    inner = doc.get("error") if isinstance(doc, Mapping) else None
    code = inner.get("code") if isinstance(inner, Mapping) else None
    wrapped = {
        "error": {
            "message": f"lane {lane!r}: {text}",
            "type": error_type(status),
            "param": None,
            "code": code if isinstance(code, str | int) else None,
        }
    }
    return json.dumps(wrapped, ensure_ascii=False).encode()
