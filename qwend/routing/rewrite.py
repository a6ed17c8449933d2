"""Model-name rewriting and stream repair on the hot path (pure, bytes in, bytes out).

Requests: the router sends a lane the name its backend expects (``served_model``).
The body was already parsed to classify it; rather than serialising it again, the one
``"model": "NAME"`` pair is substituted in place when it is found exactly once (inside
JSON strings quotes are escaped, so the pattern only matches keys); anything unusual
(escaped spelling, duplicate keys) falls back to a re-encode of the parsed document.

Responses: the backend may answer with any name (transformers answers
``ORG/NAME@main``); clients get the public name back. A JSON answer's first
``"model": "..."`` pair is the response object's own (OpenAI objects carry no nested
``model`` key and string contents cannot match), so a bounded search replaces it without
decoding the body. An SSE stream is edited per complete line (``StreamEditor``), which
also repairs it: ``data: [DONE]`` at the end when the backend left it out, and a usage
chunk when the client asked for one (``stream_options.include_usage``) and the backend
sent none. Such a chunk's counts are estimates (prompt: the router's estimate; completion:
the events that carried text) and the chunk says so with ``"qwend_usage_estimated": true``.
"""

from __future__ import annotations

import json
import re

_MODEL_PAIR = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_TEXT_DELTA = re.compile(rb'"(?:content|text|reasoning_content)"\s*:\s*"[^"]')
_ID = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')
_CREATED = re.compile(rb'"created"\s*:\s*(\d+)')
_OBJECT = re.compile(rb'"object"\s*:\s*"((?:[^"\\]|\\.)*)"')
DONE = b"data: [DONE]"
_DONE_LINE = b"\n" + DONE
_SEARCH_LIMIT = 4096
"""Bytes of a JSON answer searched for its ``model`` (objects put it near the start)."""


def model_pair(name: str) -> bytes:
    """``"model":"NAME"`` as JSON spells it."""
    return b'"model":' + json.dumps(name).encode()


def request_for_backend(body: bytes, doc_model: str, backend_model: str) -> bytes:
    """``body`` with its top-level ``model`` (``doc_model``) replaced by ``backend_model``."""
    if doc_model == backend_model:
        return body
    quoted = re.escape(json.dumps(doc_model).encode())
    pattern = re.compile(rb'"model"\s*:\s*' + quoted)
    found = pattern.findall(body)
    if len(found) == 1:
        return pattern.sub(lambda _: model_pair(backend_model), body, count=1)
    doc = json.loads(body)  # already parsed once by the handler: valid JSON, an object
    doc["model"] = backend_model
    return json.dumps(doc, ensure_ascii=False).encode()


def response_with_model(body: bytes, public: str) -> bytes:
    """A JSON answer with its ``model`` set to ``public`` (unchanged when it has none)."""
    match = _MODEL_PAIR.search(body, 0, _SEARCH_LIMIT)
    if match is None:
        return body
    pair = model_pair(public)
    if match.group() == pair:
        return body
    return body[: match.start()] + pair + body[match.end() :]


class StreamEditor:
    """Edits one SSE stream on its way to the client: public model name on every event,
    ``[DONE]`` and a usage chunk added at the end when missing (see the module doc)."""

    __slots__ = (
        "_created",
        "_id",
        "_object",
        "_pair",
        "_tail",
        "done",
        "prompt_tokens",
        "text_events",
        "usage_seen",
        "want_usage",
    )

    def __init__(self, public: str | None, *, want_usage: bool, prompt_tokens: int) -> None:
        self._pair = model_pair(public) if public else None
        """What every event's ``model`` becomes; None: left as the backend sent it."""
        self._tail = b""
        self._id: bytes | None = None
        self._created = b"0"
        self._object = b"chat.completion.chunk"
        self.want_usage = want_usage
        self.prompt_tokens = prompt_tokens
        self.done = False
        """The backend sent ``data: [DONE]``."""
        self.usage_seen = False
        """The backend sent a usage object (not ``"usage": null``)."""
        self.text_events = 0
        """Events that carried generated text (the completion estimate)."""

    def feed(self, chunk: bytes) -> bytes:
        """What to send the client for ``chunk``: its complete lines, edited; an
        unfinished line waits for the rest (a client cannot use half a line either)."""
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        return self._edit(data[:cut]) if cut else b""

    def finish(self, *, complete: bool) -> bytes:
        """The end of the stream: a dangling line, then (when the backend ended it well,
        ``complete``) the missing usage chunk and ``[DONE]``."""
        out = b""
        if self._tail:
            out = self._edit(self._tail) + b"\n\n"
            self._tail = b""
        if not complete:
            return out
        if self.want_usage and not self.usage_seen and not self.done:
            out += self._usage_event()
        if not self.done:
            out += DONE + b"\n\n"
            self.done = True
        return out

    def _edit(self, lines: bytes) -> bytes:
        if self._id is None:
            self._learn(lines)
        if self.want_usage:
            if not self.usage_seen and _USAGE_OBJECT.search(lines):
                self.usage_seen = True
            self.text_events += len(_TEXT_DELTA.findall(lines))
        if not self.done and (lines.startswith(DONE) or _DONE_LINE in lines):
            self.done = True  # at a line's start: generated text may say "data: [DONE]" too
        pair = self._pair
        return lines if pair is None else _MODEL_PAIR.sub(lambda _: pair, lines)

    def _learn(self, lines: bytes) -> None:
        found = _ID.search(lines)
        if found is None:
            return
        self._id = found.group(1)
        created = _CREATED.search(lines)
        if created is not None:
            self._created = created.group(1)
        kind = _OBJECT.search(lines)
        if kind is not None:
            self._object = kind.group(1)

    def _usage_event(self) -> bytes:
        completion = self.text_events
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }
        head = b'{"id":"' + (self._id or b"qwend-usage") + b'","object":"' + self._object
        head += b'","created":' + self._created + b"," + (self._pair or b'"model":""')
        body = b',"choices":[],"usage":' + json.dumps(usage).encode()
        return b"data: " + head + body + b',"qwend_usage_estimated":true}\n\n'
