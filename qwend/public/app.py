"""The public API endpoints: one aiohttp app per ``[[public.endpoints]]`` port.

A public endpoint is what clients on the network talk to. It checks the API
key (``[public] api_keys_file``; one ``ApiKeys`` shared by every endpoint) and
the key's rate limits (429 with ``Retry-After``), bounds the request body, and hands the
request to the router in process: no second HTTP hop. ``target = "router"``
routes like the router's own port; ``target = "role:NAME"`` pins every
request to the lanes of role NAME (``RequestSummary.role``), so the router's
admission, retries, statistics and disconnect handling apply unchanged, and a
role whose active lane is draining or not ready is answered with a 503 and
``Retry-After``.

Served: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models`` and ``GET /health``. The router's own app must be running
(it owns the upstream connection pool and the disconnect watchdog).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from functools import partial

from aiohttp import web
from aiohttp.typedefs import Handler

from qwend import jsonbody
from qwend.config.model import PublicEndpoint
from qwend.logs import get_logger
from qwend.public.historyplan import (
    COMPRESS_HEADER,
    COMPRESSED_HEADER,
    SESSION_HEADER,
    Compressed,
    HistoryHook,
    HistoryRefused,
    prompt_tokens_of,
)
from qwend.public.keyfile import ApiKey
from qwend.public.keys import ApiKeys
from qwend.public.limits import Limited
from qwend.router.exchange import Exchange
from qwend.router.handlers import (
    BODY_TIMEOUT_KEY,
    DEFAULT_BODY_TIMEOUT_S,
    Classifier,
    model_response,
    models_response,
    parse_request,
    read_body,
)
from qwend.router.proxy import error_response
from qwend.router.router import Forwarding, Router
from qwend.router.tracing import TRACE_KEY, echo_request_id, tracing_middleware
from qwend.routing.classify import classify_chat, classify_completion

log = get_logger("public")
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest request body accepted (a few images as base64 data URLs fit)."""


@dataclass(frozen=True)
class PublicContext:
    """What one public endpoint's handlers need."""

    endpoint: PublicEndpoint
    forwarding: Forwarding
    """The router's request path: requests go through it in process."""
    keys: ApiKeys
    """The one holder shared by every endpoint; a reload swaps the key set inside it."""
    max_body: int = MAX_BODY_BYTES
    history: HistoryHook | None = None
    """History compression (``compress = true`` or an ``X-Qwend-Compress`` header)."""

    @property
    def role(self) -> str | None:
        """The pinned role, or None for the router's normal routing."""
        return self.endpoint.role

    def serves(self, role: str) -> bool:
        """Whether lanes of ``role`` are behind this endpoint."""
        pinned = self.endpoint.role
        return pinned is None or pinned == role


PUBLIC_KEY: web.AppKey[PublicContext] = web.AppKey("qwend_public", PublicContext)
"""Where ``make_public_app`` keeps the endpoint's ``PublicContext``."""
CALLER_KEY: web.RequestKey[ApiKey] = web.RequestKey("qwend_api_key", ApiKey)
"""The API key a request was authenticated with (absent when keys are off)."""
COMPRESSED_KEY: web.RequestKey[str] = web.RequestKey("qwend_compressed", str)
"""The ``X-Qwend-Compressed`` value of a request whose history was compressed."""
OUTCOME_KEY: web.RequestKey[Compressed] = web.RequestKey("qwend_compression")
"""What history compression did to the request (the lane's count is fed back to it)."""


def _unauthorized(missing: bool) -> web.Response:
    message = (
        "Missing API key: send it in the header 'Authorization: Bearer YOUR_KEY'."
        if missing
        else "Incorrect API key provided. Ask the operator of this server for a valid key."
    )
    return error_response(
        401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


def _rate_limited(limited: Limited) -> web.Response:
    return error_response(
        429,
        limited.message(),
        code="rate_limit_exceeded",
        retry_after=limited.retry_after_header,
    )


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def _http_error(exc: web.HTTPException, request: web.Request, max_body: int) -> web.Response:
    """aiohttp's own 404/405/413 as OpenAI-style errors (SDKs parse the body)."""
    if exc.status == 413:
        return error_response(
            413,
            f"The request body is larger than {_size(max_body)}; send smaller or fewer images.",
            code="request_too_large",
        )
    if exc.status == 405:
        return error_response(
            405, f"Method {request.method} is not allowed on {request.path}.", code="bad_method"
        )
    return error_response(
        404,
        f"Unknown path {request.path}: this endpoint serves /v1/chat/completions,"
        " /v1/completions, /v1/models and /health.",
        code="unknown_url",
    )


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API key first (before any body is read), then the handler; HTTP errors as JSON."""
    ctx = request.app[PUBLIC_KEY]
    keys = ctx.keys.current  # once: a reload swaps the whole set, never half of it
    if keys is not None:
        header = request.headers.get("Authorization")
        key = keys.find(header)
        if key is None:
            return _unauthorized(missing=not header)
        request[CALLER_KEY] = key
        trace = request.get(TRACE_KEY)
        if trace is not None:  # the access log names the key, never shows it
            trace.key = key.label
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (404, 405, 413):
            return _http_error(exc, request, ctx.max_body)
        raise


async def _complete(request: web.Request, path: str, classify: Classifier) -> web.StreamResponse:
    """``POST /v1/chat/completions`` and ``POST /v1/completions``: into the router."""
    ctx = request.app[PUBLIC_KEY]
    fwd = ctx.forwarding
    body = await read_body(request)  # beyond client_max_size: HTTPRequestEntityTooLarge
    if isinstance(body, web.Response):  # too slow: 408
        return body
    if ctx.history is not None and path == "/v1/chat/completions":
        compressed = await _compress(request, ctx, ctx.history, body)
        if isinstance(compressed, web.Response):
            return compressed
        body = compressed
    summary = await parse_request(fwd, body, classify)
    if isinstance(summary, web.Response):
        return summary
    key = request.get(CALLER_KEY)
    if key is not None:
        limited = ctx.keys.admit(key, summary.prompt_tokens + summary.expected_output)
        if limited is not None:
            return _rate_limited(limited)
    role = ctx.role
    if role is not None:
        summary = replace(summary, role=role)
    try:
        response = await Exchange(fwd, request, path, body, summary).run()
        observe_usage(request, ctx.history, response)
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # the boundary: never a crash, always an OpenAI error
        log.exception("public endpoint internal error", path=path, target=ctx.endpoint.target)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


async def _compress(
    request: web.Request, ctx: PublicContext, history: HistoryHook, body: bytes
) -> bytes | web.Response:
    """The body with its chat history compressed when asked; a 400 for a bad header."""
    if COMPRESS_HEADER not in request.headers and not ctx.endpoint.compress:
        return body  # not asked: not even parsed here
    try:
        doc = jsonbody.loads(body)
    except jsonbody.JsonBodyError:
        return body  # parse_request answers it
    if not isinstance(doc, dict):
        return body
    lanes = [r for r in ctx.forwarding.slots.runtimes() if r.eligible and ctx.serves(r.role)]
    try:
        outcome = await history.apply(
            doc,
            lanes,
            mode=request.headers.get(COMPRESS_HEADER),
            enabled=ctx.endpoint.compress,
            session=request.headers.get(SESSION_HEADER),
        )
    except HistoryRefused as exc:
        return error_response(400, str(exc), param=COMPRESS_HEADER, code="bad_compression")
    if outcome is None:
        return body
    request[COMPRESSED_KEY] = outcome.header
    request[OUTCOME_KEY] = outcome
    return json.dumps(outcome.doc, ensure_ascii=False).encode("utf-8")


def observe_usage(
    request: web.Request, history: HistoryHook | None, response: web.StreamResponse
) -> None:
    """An answer to a compressed request: the lane's own prompt count trains the estimator.

    A whole answer's body says it; a streamed one has gone to the client by now, so its
    count is the one the exchange read from the stream's usage chunk (never qwend's own
    estimate, which would only teach the estimator itself).
    """
    outcome = request.get(OUTCOME_KEY)
    if history is None or outcome is None or response.status != 200:
        return
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        tokens = prompt_tokens_of(response.body)
        if tokens is not None:
            history.observe(outcome, tokens)
        return
    trace = request.get(TRACE_KEY)
    if trace is not None and trace.usage_from_lane and trace.prompt_tokens:
        history.observe(outcome, trace.prompt_tokens)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """``X-Qwend-Compressed`` on answers whose history was compressed."""
    note = request.get(COMPRESSED_KEY)
    if note is not None:
        response.headers[COMPRESSED_HEADER] = note


async def _models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the public model names of the lanes behind this endpoint."""
    ctx = request.app[PUBLIC_KEY]
    return models_response(ctx.forwarding.slots.catalog_for(ctx.endpoint.role))


async def _model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}``: one public model name behind this endpoint, or a 404."""
    ctx = request.app[PUBLIC_KEY]
    catalog = ctx.forwarding.slots.catalog_for(ctx.endpoint.role)
    return model_response(catalog, request.match_info["id"])


async def _health(request: web.Request) -> web.Response:
    """``GET /health``: 200 when a lane behind this endpoint accepts requests, else 503."""
    ctx = request.app[PUBLIC_KEY]
    lanes = {r.name: r.eligible for r in ctx.forwarding.slots.runtimes() if ctx.serves(r.role)}
    ok = any(lanes.values())
    doc = {
        "status": "ok" if ok else "no_lane_available",
        "target": ctx.endpoint.target,
        "lanes": lanes,
    }
    headers = None if ok else {"Retry-After": "5"}
    return web.json_response(doc, status=200 if ok else 503, headers=headers)


def make_public_app(
    endpoint: PublicEndpoint,
    router: Router,
    keys: ApiKeys | None = None,
    *,
    max_body: int = MAX_BODY_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    history: HistoryHook | None = None,
) -> web.Application:
    """The app of one public endpoint; ``keys`` None accepts every request (tests).

    ``body_timeout_s``: ``[connections] body_timeout_s``, the deadline of a request body.
    """
    tracing = tracing_middleware(router.forwarding.access, f"public {endpoint.listen}")
    app = web.Application(client_max_size=max_body, middlewares=[tracing, _guard])
    app.on_response_prepare.append(echo_request_id)
    app[BODY_TIMEOUT_KEY] = body_timeout_s
    # `is None`, not `or`: every endpoint must hold the very same ApiKeys, whatever it holds.
    shared = keys if keys is not None else ApiKeys()
    app[PUBLIC_KEY] = PublicContext(endpoint, router.forwarding, shared, max_body, history)
    app.on_response_prepare.append(_on_prepare)
    chat = partial(_complete, path="/v1/chat/completions", classify=classify_chat)
    app.router.add_post("/v1/chat/completions", chat)
    completions = partial(_complete, path="/v1/completions", classify=classify_completion)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/models/{id:.+}", _model)
    app.router.add_get("/health", _health)
    return app
