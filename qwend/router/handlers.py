"""The router's HTTP handlers (``make_router_app`` routes to them), and the request-path
pieces the public endpoints reuse: request parsing and the ``/v1/models`` union.

A completion handler parses and classifies the body, then creates the request's
``Exchange`` with the router's ``Forwarding``, which admits, forwards and relays it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

from aiohttp import ClientTimeout, web

from qwend.logs import get_logger
from qwend.router.exchange import Exchange
from qwend.router.lanes import LaneRuntime
from qwend.router.metrics import render_metrics
from qwend.router.proxy import UPSTREAM_ERRORS, error_response
from qwend.router.recording import RouterCounters
from qwend.router.router import FORWARDING_KEY, ROUTER_KEY
from qwend.router.upstream import Upstream
from qwend.routing.classify import InvalidRequest, RequestSummary
from qwend.routing.models import ModelEntry, listed_models, models_union

log = get_logger("router")
_MODELS_TIMEOUT = ClientTimeout(total=2.0)
_MODEL_ERRORS: tuple[type[BaseException], ...] = (ValueError, *UPSTREAM_ERRORS)
Classifier = Callable[[object], RequestSummary]
"""``classify_chat`` or ``classify_completion``: a decoded body to its summary."""


def _bad_request(counters: RouterCounters, message: str, param: str | None = None) -> web.Response:
    counters.bad_requests += 1
    return error_response(400, message, param=param)


def parse_request(
    counters: RouterCounters, body: bytes, classify: Classifier
) -> RequestSummary | web.Response:
    """The request's summary, or an OpenAI-style 400 (counted as a bad request)."""
    try:
        doc = json.loads(body.decode())  # str: json skips its encoding detection
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        return _bad_request(counters, f"The request body is not valid JSON: {exc}")
    try:
        return classify(doc)
    except InvalidRequest as exc:
        return _bad_request(counters, exc.message, exc.param)


async def complete(request: web.Request, path: str, classify: Classifier) -> web.StreamResponse:
    """``POST /v1/chat/completions`` and ``POST /v1/completions``."""
    fwd = request.app[FORWARDING_KEY]
    body = await request.read()
    summary = parse_request(fwd.counters, body, classify)
    if isinstance(summary, web.Response):
        return summary
    try:
        return await Exchange(fwd, request, path, body, summary).run()
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # the boundary: never a crash, always an OpenAI error
        log.exception("router internal error", path=path)
        return error_response(500, f"internal router error: {type(exc).__name__}: {exc}")


async def _lane_models(upstream: Upstream, base_url: str) -> list[ModelEntry]:
    try:
        async with upstream.session.get(base_url + "/v1/models", timeout=_MODELS_TIMEOUT) as resp:
            if resp.status != 200:
                return []
            doc = await resp.json()
    except _MODEL_ERRORS:
        return []
    return listed_models(doc)


async def models_response(upstream: Upstream, lanes: Sequence[LaneRuntime]) -> web.Response:
    """The union of the models ``lanes`` serve, as ``GET /v1/models`` answers it."""
    answers = await asyncio.gather(*(_lane_models(upstream, r.lane.base_url) for r in lanes))
    union = models_union(
        (found, runtime.lane.model) for runtime, found in zip(lanes, answers, strict=True)
    )
    return web.json_response(union)


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the union of the models the accepting lanes serve."""
    fwd = request.app[FORWARDING_KEY]
    lanes = [r for r in fwd.slots.runtimes() if r.eligible]
    return await models_response(fwd.upstream, lanes)


async def tokenize(request: web.Request) -> web.Response:
    """``POST /tokenize``: passed to the least busy accepting text lane."""
    fwd = request.app[FORWARDING_KEY]
    body = await request.read()
    lanes = sorted(
        (r for r in fwd.slots.runtimes() if r.eligible and r.text), key=lambda r: r.in_flight
    )
    if not lanes:
        return error_response(503, "no accepting text lane to tokenize with", retry_after=5)
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    for runtime in lanes[:2]:
        try:
            async with fwd.upstream.session.post(
                runtime.lane.base_url + "/tokenize", data=body, headers=headers
            ) as resp:
                data = await resp.read()
                ctype = resp.headers.get("Content-Type", "application/json")
                return web.Response(status=resp.status, body=data, headers={"Content-Type": ctype})
        except UPSTREAM_ERRORS:
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
    data = await render_metrics(request.app[ROUTER_KEY].stats_snapshot())
    return web.Response(body=data, headers={"Content-Type": "text/plain; version=0.0.4"})
