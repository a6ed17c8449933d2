"""The router's HTTP handlers (``make_router_app`` routes to them), and the request-path
pieces the public endpoints reuse: request parsing (JSON with a nesting bound, the
OpenAI shape, the media URL policy) and the ``/v1/models`` answers.

A completion handler parses and classifies the body, then creates the request's
``Exchange`` with the router's ``Forwarding``, which admits, forwards and relays it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import web

from qwend import jsonbody
from qwend.config.model import ConnectionsConfig
from qwend.jsonbody import JsonBodyError
from qwend.logs import get_logger
from qwend.router.exchange import Exchange
from qwend.router.media import MediaRefused, check_media
from qwend.router.metrics import METRICS_SOURCES_KEY, render_metrics
from qwend.router.proxy import REMOTE_ERRORS, error_response
from qwend.router.recording import RouterCounters
from qwend.router.router import FORWARDING_KEY, ROUTER_KEY, Forwarding
from qwend.routing.classify import InvalidRequest, RequestSummary
from qwend.routing.media import MediaPolicy, media_sources
from qwend.routing.names import MODEL_NOT_FOUND, ModelCatalog
from qwend.routing.rewrite import request_for_backend
from qwend.supervisor.remote import access_for

log = get_logger("router")
MEDIA_REFUSED = "media_url_refused"
"""The error ``code`` of a request refused by the media URL policy."""
Classifier = Callable[[object], RequestSummary]
"""``classify_chat`` or ``classify_completion``: a decoded body to its summary."""
BODY_TIMEOUT_KEY: web.AppKey[float] = web.AppKey("qwend_body_timeout_s", float)
"""``[connections] body_timeout_s`` of the app (router port or public endpoint)."""
DEFAULT_BODY_TIMEOUT_S = ConnectionsConfig().body_timeout_s
LINGER_AFTER_408_S = 1.0
"""How long a too-slow body's connection still drains after its 408 and FIN."""
REQUEST_TIMEOUT = "request_timeout"
"""The error ``code`` of a request whose body did not arrive in time."""


def _bad_request(counters: RouterCounters, message: str, param: str | None = None) -> web.Response:
    counters.bad_requests += 1
    return error_response(400, message, param=param)


async def read_body(request: web.Request) -> bytes | web.Response:
    """The whole request body, or a 408 that closes the connection when it is not all
    in within the app's ``BODY_TIMEOUT_KEY``.

    The connection guard's head deadline ends once the headers are in; without this a
    client trickling its body a byte at a time holds a connection and a handler for as
    long as it likes. Every handler that reads a body reads it here.
    """
    timeout_s = request.app.get(BODY_TIMEOUT_KEY, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()  # beyond client_max_size: HTTPRequestEntityTooLarge
    except TimeoutError:
        pass
    log.warning(
        "request body too slow",
        path=request.path,
        peer=request.remote,
        timeout_s=timeout_s,
    )
    refused = error_response(
        408,
        f"The request body did not arrive within {timeout_s:g} s; send it at once.",
        code=REQUEST_TIMEOUT,
    )
    refused.force_close()
    # Sent here, then the connection closed at once: returned as is, aiohttp would first
    # go on reading the rest of the body for its lingering time (10 s) before closing.
    await refused.prepare(request)
    await refused.write_eof()
    await _lingering_half_close(request)
    request.protocol.force_close()  # the transport flushes the 408, then closes
    return refused


async def _lingering_half_close(request: web.Request) -> None:
    """Send a FIN after the 408, then take (and drop) the client's bytes for a moment.

    Closed outright while the client is still sending, the socket answers its next byte
    with a reset, and a reset can destroy the 408 in the client's receive buffer before
    the client reads it. A half-close lets the client see the 408 and the end of the
    stream first; the linger is short and bounded, so a trickler gains nothing from it.
    """
    transport = request.transport
    if transport is None or not transport.can_write_eof():
        return
    transport.write_eof()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(LINGER_AFTER_408_S):
            while await request.content.readany():
                pass


async def parse_request(
    fwd: Forwarding, body: bytes, classify: Classifier
) -> RequestSummary | web.Response:
    """The request's summary, or an OpenAI-style 400 (counted as a bad request).

    The one place the router's port and the public endpoints read a completion body:
    JSON with a nesting bound, then the OpenAI shape, then the media URL policy.
    """
    try:
        doc = jsonbody.loads(body)
    except JsonBodyError as exc:
        return _bad_request(fwd.counters, str(exc))
    try:
        summary = classify(doc)
    except InvalidRequest as exc:
        return _bad_request(fwd.counters, exc.message, exc.param)
    refused = await media_refusal(fwd, doc)
    return summary if refused is None else refused


async def media_refusal(fwd: Forwarding, doc: object) -> web.Response | None:
    """A 400 when a media URL of ``doc`` is refused by the policy, else None."""
    sources = list(media_sources(doc))
    if not sources:  # text: nothing to judge
        return None
    config = fwd.config
    try:
        await check_media(sources, MediaPolicy.of(config), config.media_resolve_timeout_s)
    except MediaRefused as exc:
        fwd.counters.bad_requests += 1
        return error_response(400, exc.message, param=exc.param, code=MEDIA_REFUSED)
    return None


async def complete(request: web.Request, path: str, classify: Classifier) -> web.StreamResponse:
    """``POST /v1/chat/completions`` and ``POST /v1/completions``."""
    fwd = request.app[FORWARDING_KEY]
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    summary = await parse_request(fwd, body, classify)
    if isinstance(summary, web.Response):
        return summary
    try:
        return await Exchange(fwd, request, path, body, summary).run()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # the boundary: never a crash, always an OpenAI error
        log.exception("router internal error", path=path)
        return error_response(500, f"internal router error: {type(exc).__name__}: {exc}")


def models_response(catalog: ModelCatalog) -> web.Response:
    """``GET /v1/models``: every public name the lanes serve (aliases included), from the
    configuration, so it lists exactly what a request may name, ready or not."""
    return web.json_response(catalog.listing())


def model_response(catalog: ModelCatalog, name: str) -> web.Response:
    """``GET /v1/models/{id}``: one public name, or an OpenAI-style 404."""
    model = catalog.get(name)
    if model is None:
        message = catalog.not_found_message(name)
        return error_response(404, message, param="model", code=MODEL_NOT_FOUND)
    return web.json_response(model.entry())


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models`` on the router's port."""
    return models_response(request.app[FORWARDING_KEY].slots.catalog)


async def model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}`` on the router's port (ids may hold ``/``: ``ORG/NAME``)."""
    catalog = request.app[FORWARDING_KEY].slots.catalog
    return model_response(catalog, request.match_info["id"])


async def tokenize(request: web.Request) -> web.Response:
    """``POST /tokenize``: passed to the least busy accepting text lane (of those serving
    the body's ``model``, renamed to what the lane's backend expects)."""
    fwd = request.app[FORWARDING_KEY]
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        doc = jsonbody.loads(body)
    except JsonBodyError as exc:
        return _bad_request(fwd.counters, str(exc))
    model = doc.get("model") if isinstance(doc, dict) else None
    serving: frozenset[str] | None = None
    if isinstance(model, str) and model and fwd.slots.catalog.models:
        found = fwd.slots.catalog.get(model)
        if found is None:
            message = fwd.slots.catalog.not_found_message(model)
            return error_response(404, message, param="model", code=MODEL_NOT_FOUND)
        serving = found.lanes
    lanes = sorted(
        (
            r
            for r in fwd.slots.runtimes()
            if r.eligible and r.text and (serving is None or r.name in serving)
        ),
        key=lambda r: r.in_flight,
    )
    if not lanes:
        return error_response(503, "no accepting text lane to tokenize with", retry_after=5)
    refused = await media_refusal(fwd, doc)  # vLLM fetches a chat's media to tokenize it
    if refused is not None:
        return refused
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    for runtime in lanes[:2]:
        lane = runtime.lane
        data = body
        if isinstance(model, str) and model and lane.backend_model:
            data = request_for_backend(body, model, lane.backend_model)
        try:
            acc = access_for(lane.name, lane.remote)
            async with fwd.upstream.session.post(
                lane.base_url + "/tokenize",
                data=data,
                headers=acc.with_headers(headers),
                timeout=acc.adjust(fwd.upstream.timeout),
                ssl=acc.ssl,
            ) as resp:
                answer = await resp.read()
                ctype = resp.headers.get("Content-Type", "application/json")
                return web.Response(
                    status=resp.status, body=answer, headers={"Content-Type": ctype}
                )
        except REMOTE_ERRORS:
            continue
    return error_response(502, "the lanes could not be reached to tokenize", retry_after=1)


async def health(request: web.Request) -> web.Response:
    """``GET /health``: 200 when at least one lane accepts requests, else 503."""
    lanes = {r.name: r.eligible for r in request.app[FORWARDING_KEY].slots.runtimes()}
    ok = any(lanes.values())
    doc = {"status": "ok" if ok else "no_lane_available", "lanes": lanes}
    return web.json_response(doc, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    router = request.app[ROUTER_KEY]
    sources = request.app[METRICS_SOURCES_KEY]
    data = await render_metrics(router.stats_snapshot(), router.forwarding.traffic.views(), sources)
    return web.Response(body=data, headers={"Content-Type": "text/plain; version=0.0.4"})
