"""Request IDs on the router port and the public endpoints, and the access log.

``tracing_middleware(fwd, listener)`` (outermost) gives each request its ID
(``qwend.routing.tracing.request_id_for``), binds it to every log line written
while the request is handled (``qwend.logs.REQUEST_ID``), keeps a ``Trace``
under ``TRACE_KEY`` for the exchange to fill (lane, attempts, TTFT, tokens) and
writes the access record when the handler is done. ``echo_request_id`` (an
``on_response_prepare`` signal) puts ``X-Request-Id`` on every response, errors
and streams included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from qwend.logs import REQUEST_ID
from qwend.router.accesslog import AccessLogSlot
from qwend.routing.tracing import REQUEST_ID_HEADER, Trace, request_id_for

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TRACE_KEY: web.RequestKey[Trace] = web.RequestKey("qwend_trace", Trace)
"""The request's ``Trace`` (its ID and what the access log records)."""
CLIENT_GONE = 499
"""The access log's status of a request whose client left first (nginx's convention)."""


def _sent_bytes(response: web.StreamResponse) -> int:
    if response.prepared:
        return response.body_length
    body = response.body if isinstance(response, web.Response) else None
    return len(body) if isinstance(body, bytes | bytearray) else 0


def tracing_middleware(access: AccessLogSlot, listener: str) -> Middleware:
    """The outermost middleware of an app that forwards requests (see module docstring)."""

    @web.middleware
    async def tracing(request: web.Request, handler: Handler) -> web.StreamResponse:
        trace = Trace(
            request_id=request_id_for(request.headers.get(REQUEST_ID_HEADER)),
            method=request.method,
            route=Trace.route_of(request.path),
            listener=listener,
        )
        request[TRACE_KEY] = trace
        started = time.monotonic()
        bound = REQUEST_ID.set(trace.request_id)  # every log line of this task carries it
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            _write(access, trace, CLIENT_GONE, 0, started)
            raise
        except web.HTTPException as exc:  # an inner app's own HTTP answer
            _write(access, trace, exc.status, 0, started)
            raise
        finally:
            REQUEST_ID.reset(bound)
        _write(access, trace, response.status, _sent_bytes(response), started)
        return response

    return tracing


def _write(access: AccessLogSlot, trace: Trace, status: int, sent: int, started: float) -> None:
    sink = access.sink
    if sink is not None:
        sink.write(trace.record(status, sent, time.monotonic() - started))


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the request's ID on its response."""
    trace = request.get(TRACE_KEY)
    if trace is not None:
        response.headers[REQUEST_ID_HEADER] = trace.request_id


def request_id(request: web.Request) -> str | None:
    """The request's ID (None outside the tracing middleware)."""
    trace = request.get(TRACE_KEY)
    return None if trace is None else trace.request_id
