"""The router's HTTP handlers and routes (``make_router_app`` adds them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from functools import partial

from aiohttp import ClientTimeout, web

from qwend.logs import get_logger
from qwend.router.admission import LaneRuntime
from qwend.router.metrics import render_metrics
from qwend.router.proxy import UPSTREAM_ERRORS, error_response
from qwend.router.router import ROUTER_KEY, Router
from qwend.routing.classify import (
    InvalidRequest,
    RequestSummary,
    classify_chat,
    classify_completion,
)

log = get_logger("router")
_MODELS_TIMEOUT = ClientTimeout(total=2.0)
_MODEL_ERRORS: tuple[type[BaseException], ...] = (ValueError, *UPSTREAM_ERRORS)
_Classifier = Callable[[object], RequestSummary]


def _bad_request(router: Router, message: str, param: str | None = None) -> web.Response:
    router.counters.bad_requests += 1
    return error_response(400, message, param=param)


def parse_request(
    router: Router, body: bytes, classify: _Classifier
) -> RequestSummary | web.Response:
    """The request's summary, or an OpenAI-style 400 (counted as a bad request)."""
    try:
        doc = json.loads(body.decode())  # str: json skips its encoding detection
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        return _bad_request(router, f"The request body is not valid JSON: {exc}")
    try:
        return classify(doc)
    except InvalidRequest as exc:
        return _bad_request(router, exc.message, exc.param)


async def _proxy(request: web.Request, path: str, classify: _Classifier) -> web.StreamResponse:
    """``POST /v1/chat/completions`` and ``POST /v1/completions``."""
    router = request.app[ROUTER_KEY]
    body = await request.read()
    summary = parse_request(router, body, classify)
    if isinstance(summary, web.Response):
        return summary
    try:
        return await router.handle(request, path, body, summary)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # the boundary: never a crash, always an OpenAI error
        log.exception("router internal error", path=path)
        return error_response(500, f"internal router error: {type(exc).__name__}: {exc}")


async def _lane_models(router: Router, base_url: str) -> list[dict[str, object]]:
    try:
        async with router.session.get(base_url + "/v1/models", timeout=_MODELS_TIMEOUT) as resp:
            if resp.status != 200:
                return []
            doc = await resp.json()
    except _MODEL_ERRORS:
        return []
    data = doc.get("data") if isinstance(doc, dict) else None
    return [m for m in data if isinstance(m, dict) and "id" in m] if isinstance(data, list) else []


async def models_response(router: Router, lanes: Sequence[LaneRuntime]) -> web.Response:
    """The union of the models ``lanes`` serve, as ``GET /v1/models`` answers it."""
    answers = await asyncio.gather(*(_lane_models(router, r.lane.base_url) for r in lanes))
    seen: dict[str, dict[str, object]] = {}
    for runtime, found in zip(lanes, answers, strict=True):
        if not found and runtime.lane.model:
            found = [{"id": runtime.lane.model, "object": "model", "owned_by": "qwend"}]
        for model in found:
            seen.setdefault(str(model["id"]), model)
    return web.json_response({"object": "list", "data": list(seen.values())})


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the union of the models the accepting lanes serve."""
    router = request.app[ROUTER_KEY]
    return await models_response(router, [r for r in router.lanes() if r.eligible])


async def tokenize(request: web.Request) -> web.Response:
    """``POST /tokenize``: passed to the least busy accepting text lane."""
    router = request.app[ROUTER_KEY]
    body = await request.read()
    lanes = sorted((r for r in router.lanes() if r.eligible and r.text), key=lambda r: r.in_flight)
    if not lanes:
        return error_response(503, "no accepting text lane to tokenize with", retry_after=5)
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    for runtime in lanes[:2]:
        try:
            async with router.session.post(
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
    router = request.app[ROUTER_KEY]
    lanes = {r.name: r.eligible for r in router.lanes()}
    ok = any(lanes.values())
    doc = {"status": "ok" if ok else "no_lane_available", "lanes": lanes}
    return web.json_response(doc, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    data = await render_metrics(request.app[ROUTER_KEY].stats_snapshot())
    return web.Response(body=data, headers={"Content-Type": "text/plain; version=0.0.4"})


def add_routes(app: web.Application) -> None:
    """Register the router's endpoints on ``app``."""
    # partial() of the coroutine function itself: no wrapper frame per request.
    chat = partial(_proxy, path="/v1/chat/completions", classify=classify_chat)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post(
        "/v1/completions", partial(_proxy, path="/v1/completions", classify=classify_completion)
    )
    app.router.add_get("/v1/models", models)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
