"""HTTP pieces of the router: OpenAI error bodies, upstream calls, the stream relay.

Nothing here decides where a request goes (``qwend.router.exchange`` does). These
functions move bytes: send one attempt to a lane, copy an SSE stream to the
client chunk by chunk (no buffering), end a broken stream with an OpenAI-style
error event, and pull ``usage`` out of a response without decoding all of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Protocol

from aiohttp import ClientError, ClientResponse, web

from qwend.errors import LaneError
from qwend.routing.errorbody import openai_error
from qwend.routing.rewrite import StreamEditor

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Lane answers that are re-sent to another lane when nothing reached the client yet."""
UPSTREAM_ERRORS: tuple[type[BaseException], ...] = (ClientError, TimeoutError, OSError)
"""Exceptions meaning "the lane failed" while talking to it."""
REMOTE_ERRORS: tuple[type[BaseException], ...] = (*UPSTREAM_ERRORS, LaneError)
"""The same, and a remote lane whose key or TLS files became unusable (``LaneError``)."""
LANE_HEADER = "X-Qwend-Lane"
"""The lane that answered; ``PREFILL>DECODE`` for a prefill/decode pair."""
PREFILL_LANE_HEADER = "X-Qwend-Prefill-Lane"
"""The prefill lane of a pair's answer."""
KV_TRANSFER_FAILED = "kv_transfer_failed"
ATTEMPTS_HEADER = "X-Qwend-Attempts"
_JSON = "application/json"
_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    502: "server_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    """An OpenAI-style error document."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    doc = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json.dumps(doc).encode()


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI-style error response (with ``Retry-After`` when given)."""
    extra = dict(headers or {})
    if retry_after is not None:
        extra["Retry-After"] = str(retry_after)
    return web.Response(
        status=status,
        body=error_body(status, message, param=param, code=code),
        content_type=_JSON,
        headers=extra,
    )


def error_event(message: str, code: str = "upstream_failed") -> bytes:
    """An SSE event carrying an OpenAI-style error (the openai package raises APIError on it)."""
    doc = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _int_after(data: bytes, key: bytes, start: int) -> int:
    at = data.find(key, start)
    if at < 0:
        return 0
    at = data.find(b":", at + len(key))
    end = at + 1
    size = len(data)
    while end < size and data[end] in b" \t":
        end += 1
    digits = end
    while digits < size and 48 <= data[digits] <= 57:
        digits += 1
    return int(data[end:digits]) if digits > end else 0


def usage_counts(data: bytes) -> tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` of the last usage object in ``data``, found
    without decoding JSON (this runs on every answer); zeros when there is none."""
    at = data.rfind(b'"usage"')
    if at < 0:
        return 0, 0
    return _int_after(data, b'"prompt_tokens"', at), _int_after(data, b'"completion_tokens"', at)


@dataclass(slots=True)
class Failure:
    """A failed attempt that may be retried on another lane (nothing reached the client)."""

    lane: str
    status: int
    """Upstream status, or 502 for a connection error."""
    body: bytes
    content_type: str
    retryable: bool
    breaker_failure: bool
    """Counts against the lane's breaker (429 does not: the lane is alive, just full)."""
    kv_transfer: bool = False
    """A decode lane could not pull the KV: the pair's prefill lane is to blame."""

    def response(self, attempts: int) -> web.Response:
        """The failure as the client gets it when no retry is left: the lane's own error."""
        headers = {LANE_HEADER: self.lane, ATTEMPTS_HEADER: str(attempts)}
        if self.status in (429, 503):
            headers["Retry-After"] = "1"
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=headers
        )


def settle_response(resp: ClientResponse | None, verdict: bool | None) -> None:
    """A good answer's connection goes back to the pool; any other is closed (a failed or
    abandoned exchange may have left unread bytes on it)."""
    if resp is None:
        return
    if verdict is True:
        resp.release()
    else:
        resp.close()


def connection_failure(lane: str, exc: BaseException, when: str) -> Failure:
    """A Failure for a lane that could not be reached, broke or timed out before answering."""
    detail = str(exc) or type(exc).__name__
    message = f"lane {lane!r} failed {when}: {detail}"
    status, code = (504, "lane_timeout") if isinstance(exc, TimeoutError) else (502, "lane_failed")
    return Failure(lane, status, error_body(status, message, code=code), _JSON, True, True)


def transfer_failure(lane: str, message: str, *, kv_transfer: bool = False) -> Failure:
    """A Failure of a pair's KV hand-over (502 ``kv_transfer_failed`` when no retry is left).

    ``kv_transfer``: the decode lane ``lane`` could not pull the KV (not its fault: no
    breaker failure); otherwise the prefill lane ``lane`` handed out no parameters.
    """
    body = error_body(502, message, code=KV_TRANSFER_FAILED)
    return Failure(lane, 502, body, _JSON, True, not kv_transfer, kv_transfer)


async def read_failure(lane: str, resp: ClientResponse) -> Failure:
    """A Failure from a retryable status, keeping the lane's error body."""
    try:
        body = await resp.read()
    except UPSTREAM_ERRORS:
        body = error_body(resp.status, f"lane {lane!r} answered {resp.status}")
    wrapped = openai_error(resp.status, body, lane)
    if wrapped is not None:
        return Failure(lane, resp.status, wrapped, _JSON, True, resp.status != 429)
    return Failure(lane, resp.status, body, _JSON, True, resp.status != 429)


class StreamWatch(Protocol):
    """The relay's link to the request's timers (an ``Exchange``): the idle timer runs
    while the relay waits for the lane, never while it writes to a slow client."""

    def reading(self) -> None:
        """The relay waits for the lane's next chunk: arm the inter-token idle timer."""
        ...

    def writing(self) -> None:
        """The lane sent data: it made progress; only the overall deadline runs now."""
        ...

    def take_expiry(self) -> str | None:
        """After a cancellation: which timer fired (the message), None if the client left."""
        ...


@dataclass(slots=True)
class StreamResult:
    """What a relayed stream looked like, for statistics and the breaker."""

    first_at: float
    """Monotonic time the first chunk arrived."""
    last_at: float
    events: int
    """SSE ``data:`` events relayed (a proxy for tokens when usage is absent)."""
    usage: tuple[int, int]
    """``(prompt_tokens, completion_tokens)`` from the stream's usage chunk (zeros: none)."""
    upstream_error: str | None = None
    """Set when the lane broke mid-stream (an error event was sent to the client)."""
    client_gone: bool = False


async def relay_stream(
    request: web.Request,
    resp: ClientResponse,
    first: bytes,
    headers: dict[str, str],
    watch: StreamWatch,
    editor: StreamEditor,
) -> tuple[web.StreamResponse, StreamResult]:
    """Copy an SSE stream to the client chunk by chunk through ``editor`` (public model
    name, ``[DONE]`` and usage repair); ``first`` is already read.

    Never replays: an upstream failure after this point ends the client's stream
    with an error event. A client that went away ends the relay (the caller
    closes the upstream connection, which aborts generation on the lane).
    ``watch.take_expiry()`` tells a timer's cancellation (the deadline, or no
    data from the lane within the idle timeout: ends the stream with an error
    event) from a client disconnect (re-raised).
    """
    out = web.StreamResponse(status=resp.status, headers=headers)
    out.content_type = "text/event-stream"
    result = StreamResult(time.monotonic(), 0.0, first.count(b"data:"), (0, 0))
    previous, tail = b"", first
    try:
        await out.prepare(request)
        edited = editor.feed(first)
        if edited:
            await out.write(edited)
    except ConnectionResetError:
        result.client_gone = True
        return out, result
    except asyncio.CancelledError:
        expiry = watch.take_expiry()
        if expiry is None:
            raise
        result.upstream_error = expiry  # the client is not reading: nothing more to send
        return out, result
    content = resp.content
    while True:
        watch.reading()
        try:
            chunk = await content.readany()
        except UPSTREAM_ERRORS as exc:
            result.upstream_error = str(exc) or type(exc).__name__
            break
        except asyncio.CancelledError:
            expiry = watch.take_expiry()
            if expiry is None:
                raise
            result.upstream_error = expiry
            break
        if not chunk:
            break
        watch.writing()
        result.events += chunk.count(b"data:")
        previous, tail = tail, chunk  # the usage event may straddle two chunks
        try:
            edited = editor.feed(chunk)
            if edited:
                await out.write(edited)
        except ConnectionResetError:
            result.client_gone = True
            return out, result
        except asyncio.CancelledError:
            expiry = watch.take_expiry()
            if expiry is None:
                raise
            result.upstream_error = expiry  # stuck writing to a slow client: stop here
            return out, result
    result.last_at = time.monotonic()
    result.usage = usage_counts(previous[-1024:] + tail)
    ending = editor.finish(complete=result.upstream_error is None)
    if result.upstream_error is not None:
        message = (
            f"the lane failed mid-stream ({result.upstream_error}); the response is incomplete"
        )
        ending += error_event(message)
    if ending:
        try:
            await out.write(ending)
        except ConnectionResetError:
            result.client_gone = True
            return out, result
    try:
        await out.write_eof()
    except ConnectionResetError:
        result.client_gone = True
    return out, result
