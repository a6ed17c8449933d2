"""The web console: a chat page and its small API on ``[public] console_listen``.

Served by the daemon beside the public endpoints and under the same API key
policy: the page and its static files load without a key (there is nothing
secret in them), and when ``[public] api_keys_file`` is set every API call needs
``Authorization: Bearer KEY`` (the page asks for the key once and keeps it in the
browser's localStorage). Chat requests go into the router in process like a
public endpoint's; the ``X-Qwend-Target`` header picks the router or one role.

Routes: ``GET /`` and ``/static/...`` (the page), ``GET /api/info`` (what the
page needs before it has a key), ``GET /api/targets``, ``POST
/v1/chat/completions``, ``GET /v1/models``, ``GET /api/sessions/{id}/compression``
(what the last history compression of a chat session kept and dropped).
Every response carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace

from aiohttp import web
from aiohttp.typedefs import Handler

from qwend import __version__, jsonbody
from qwend.config.model import PublicConfig
from qwend.logs import get_logger
from qwend.public.app import CALLER_KEY, OUTCOME_KEY, observe_usage
from qwend.public.console.assets import Asset, load_assets
from qwend.public.console.images import ImageRefused, check_images
from qwend.public.historyplan import (
    COMPRESS_HEADER,
    COMPRESSED_HEADER,
    SESSION_HEADER,
    HistoryHook,
    HistoryRefused,
)
from qwend.public.keys import ApiKeys
from qwend.router.exchange import Exchange
from qwend.router.handlers import (
    BODY_TIMEOUT_KEY,
    DEFAULT_BODY_TIMEOUT_S,
    models_response,
    parse_request,
    read_body,
)
from qwend.router.lanes import LaneRuntime
from qwend.router.proxy import error_response
from qwend.router.router import Forwarding, Router
from qwend.router.tracing import echo_request_id, tracing_middleware
from qwend.routing.classify import classify_chat

log = get_logger("console")
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest chat request (several downscaled images as data URLs fit easily)."""
TARGET_HEADER = "X-Qwend-Target"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from another origin, never framed."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class ConsoleContext:
    """What the console's handlers need."""

    public: PublicConfig
    forwarding: Forwarding
    keys: ApiKeys
    """The holder every public endpoint shares: a reload swaps the key set inside it."""
    history: HistoryHook | None
    """History compression (None: requests go as sent)."""
    assets: dict[str, Asset]


CONSOLE_KEY: web.AppKey[ConsoleContext] = web.AppKey("qwend_console", ConsoleContext)
NOTE_KEY: web.RequestKey[str] = web.RequestKey("qwend_console_compressed", str)
"""The ``X-Qwend-Compressed`` value of a request whose history was compressed."""


def _needs_key(path: str) -> bool:
    return path.startswith(("/api/", "/v1/")) and path != "/api/info"


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The key for API calls (never for the page itself); HTTP errors as OpenAI JSON."""
    ctx = request.app[CONSOLE_KEY]
    keys = ctx.keys.current  # once: a reload swaps the whole set
    key = None
    if keys is not None and _needs_key(request.path):
        header = request.headers.get("Authorization")
        key = keys.find(header)
        if key is None:
            message = (
                "This console needs an API key: enter one of the server's API keys."
                if not header
                else "Incorrect API key. Ask the operator of this server for a valid key."
            )
            return error_response(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
    if key is not None:
        request[CALLER_KEY] = key
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 413:
            return error_response(
                413,
                "The request is too large: send fewer or smaller images.",
                code="request_too_large",
            )
        if exc.status in (404, 405):
            message = f"{request.method} {request.path} is not served here."
            return error_response(exc.status, message, code="unknown_url")
        raise


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on every response; the compression note on chat answers."""
    response.headers.update(SECURITY_HEADERS)
    note = request.get(NOTE_KEY)
    if note is not None:
        response.headers[COMPRESSED_HEADER] = note
    if request.path.startswith(("/api/", "/v1/")):
        response.headers.setdefault("Cache-Control", "no-store")


def _asset_response(request: web.Request, asset: Asset) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=None, headers=headers | {
        "Content-Type": asset.content_type
    })  # fmt: skip


async def _index(request: web.Request) -> web.Response:
    return _asset_response(request, request.app[CONSOLE_KEY].assets["index.html"])


async def _static(request: web.Request) -> web.Response:
    asset = request.app[CONSOLE_KEY].assets.get(request.match_info["path"])
    if asset is None:
        raise web.HTTPNotFound()
    return _asset_response(request, asset)


async def _info(request: web.Request) -> web.Response:
    """What the page needs first: whether it must ask for a key, and its settings."""
    ctx = request.app[CONSOLE_KEY]
    public = ctx.public
    return web.json_response(
        {
            "version": __version__,
            "keys_required": ctx.keys.enabled,
            "image_max_side": public.console_image_max_side,
            "compress": public.console_compress,
            "keep_recent_turns": public.keep_recent_turns,
            "history_budget_tokens": public.history_budget_tokens,
        }
    )


def _target_doc(target: str, label: str, lanes: list[LaneRuntime]) -> dict[str, object]:
    active = [r for r in lanes if r.lane.active]
    return {
        "id": target,
        "label": label,
        "ready": any(r.eligible for r in lanes),
        "image": any(r.image for r in active),
        "text": any(r.text for r in active),
        "lanes": [
            {
                "name": r.name,
                "role": r.role,
                "variant": r.lane.variant,
                "model": r.lane.model,
                "ready": r.eligible,
            }
            for r in active
        ],
    }


async def _targets(request: web.Request) -> web.Response:
    """``GET /api/targets``: the router, then each role with an active lane."""
    runtimes = request.app[CONSOLE_KEY].forwarding.slots.runtimes()
    targets = [_target_doc("router", "router (automatic)", runtimes)]
    roles: dict[str, list[LaneRuntime]] = {}
    for runtime in runtimes:
        roles.setdefault(runtime.role, []).append(runtime)
    for role, lanes in sorted(roles.items()):
        if any(r.lane.active for r in lanes):
            targets.append(_target_doc(f"role:{role}", role, lanes))
    return web.json_response({"targets": targets})


async def _models(request: web.Request) -> web.Response:
    """``GET /v1/models``: the public model names the router serves (as its port lists)."""
    return models_response(request.app[CONSOLE_KEY].forwarding.slots.catalog_for(None))


async def _compression(request: web.Request) -> web.Response:
    """What the last compression of a session kept and dropped (404 when none)."""
    ctx = request.app[CONSOLE_KEY]
    session = request.match_info["session"]
    report = None if ctx.history is None else ctx.history.report(session)
    if report is None:
        return error_response(404, "No compressed history for this session.", code="no_compression")
    return web.json_response(report)


def _target_role(ctx: ConsoleContext, header: str | None) -> str | web.Response | None:
    """The role the request is pinned to (None: the router picks) or a 400."""
    if header is None or header == "router":
        return None
    role = header.removeprefix("role:")
    known = {r.role for r in ctx.forwarding.slots.runtimes()}
    if header.startswith("role:") and role in known:
        return role
    return error_response(
        400,
        f"Unknown target {header!r}: use 'router' or 'role:NAME' with one of"
        f" {', '.join(sorted(known)) or 'no roles'}.",
        param=TARGET_HEADER,
        code="unknown_target",
    )


async def _chat(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``: images checked, history compressed, into the router."""
    ctx = request.app[CONSOLE_KEY]
    fwd = ctx.forwarding
    body = await read_body(request)
    if isinstance(body, web.Response):
        return body
    role = _target_role(ctx, request.headers.get(TARGET_HEADER))
    if isinstance(role, web.Response):
        return role
    try:
        doc = jsonbody.loads(body)
    except jsonbody.JsonBodyError as exc:
        return error_response(400, str(exc))
    if isinstance(doc, dict):
        try:
            check_images(doc, ctx.public.console_image_max_side)
        except ImageRefused as exc:
            return error_response(400, str(exc), param=exc.param, code="image_too_large")
        lanes = [r for r in fwd.slots.runtimes() if r.eligible and (role in (None, r.role))]
        try:
            outcome = (
                None
                if ctx.history is None
                else await ctx.history.apply(
                    doc,
                    lanes,
                    mode=request.headers.get(COMPRESS_HEADER),
                    enabled=ctx.public.console_compress,
                    session=request.headers.get(SESSION_HEADER),
                )
            )
        except HistoryRefused as exc:
            return error_response(400, str(exc), param=COMPRESS_HEADER, code="bad_compression")
        if outcome is not None:
            body = json.dumps(outcome.doc, ensure_ascii=False).encode("utf-8")
            request[NOTE_KEY] = outcome.header
            request[OUTCOME_KEY] = outcome
    summary = await parse_request(fwd, body, classify_chat)
    if isinstance(summary, web.Response):
        return summary
    key = request.get(CALLER_KEY)
    if key is not None:
        limited = ctx.keys.admit(key, summary.prompt_tokens + summary.expected_output)
        if limited is not None:
            return error_response(
                429, limited.message(), code="rate_limit_exceeded",
                retry_after=limited.retry_after_header,
            )  # fmt: skip
    if role is not None:
        summary = replace(summary, role=role)
    try:
        response = await Exchange(fwd, request, "/v1/chat/completions", body, summary).run()
        observe_usage(request, ctx.history, response)
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:  # the boundary: never a crash, always an OpenAI error
        log.exception("console internal error")
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def make_console_app(
    public: PublicConfig,
    router: Router,
    keys: ApiKeys | None = None,
    history: HistoryHook | None = None,
    *,
    max_body: int = MAX_BODY_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
) -> web.Application:
    """The console app; ``keys`` None accepts every call (tests)."""
    # Traced like the public ports: a request id on every answer, the access log, and the
    # lane's own usage of a streamed answer for the history estimator.
    tracing = tracing_middleware(router.forwarding.access, f"console {public.console_listen}")
    app = web.Application(client_max_size=max_body, middlewares=[tracing, _guard])
    app.on_response_prepare.append(echo_request_id)
    app[BODY_TIMEOUT_KEY] = body_timeout_s
    fwd = router.forwarding
    app[CONSOLE_KEY] = ConsoleContext(
        public,
        fwd,
        keys if keys is not None else ApiKeys(),
        history,
        load_assets(),
    )
    app.on_response_prepare.append(_on_prepare)
    app.router.add_get("/", _index)
    app.router.add_get("/static/{path:.+}", _static)
    app.router.add_get("/api/info", _info)
    app.router.add_get("/api/targets", _targets)
    app.router.add_get("/api/sessions/{session}/compression", _compression)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    return app
