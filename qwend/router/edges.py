"""OpenAI-style JSON for every error the router's own port answers.

aiohttp answers unknown paths, wrong methods and oversized bodies in plain text;
SDKs expect ``{"error": {...}}``. The middleware turns those into JSON errors: a
404 names the paths this port serves (read from the app's routes, so it stays
true as routes are added), OpenAI paths the router does not implement
(``/v1/embeddings``, ``/v1/responses`` ...) say so, a 405 carries ``Allow``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from qwend.router.proxy import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def served_paths(app: web.Application) -> list[str]:
    """``METHOD /path`` of every route of ``app``, in the order they were added."""
    out: list[str] = []
    for route in app.router.routes():
        if route.method == "HEAD":  # added beside each GET by aiohttp
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        entry = f"{route.method} {path}"
        if path and entry not in out:
            out.append(entry)
    return out


def _not_found(request: web.Request) -> web.Response:
    served = ", ".join(served_paths(request.app))
    if request.path.startswith("/v1/"):
        message = f"{request.path} is not supported by this router. It serves: {served}."
        return error_response(404, message, code="unsupported_endpoint")
    return error_response(
        404, f"Unknown path {request.path}. This router serves: {served}.", code="unknown_url"
    )


def _not_allowed(request: web.Request, exc: web.HTTPMethodNotAllowed) -> web.Response:
    allowed = sorted(exc.allowed_methods)
    return error_response(
        405,
        f"Method {request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
        code="method_not_allowed",
        headers={"Allow": ", ".join(allowed)},
    )


def _too_large(exc: web.HTTPRequestEntityTooLarge) -> web.Response:
    return error_response(
        413, exc.text or "The request body is too large.", code="request_too_large"
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors (404, 405, 413 and the rest) into OpenAI JSON."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        return _not_allowed(request, exc)
    except web.HTTPNotFound:
        return _not_found(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return _too_large(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason or "request refused", headers=None)
