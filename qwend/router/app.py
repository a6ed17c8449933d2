"""The router's aiohttp application: one OpenAI-compatible entry point in front of the lanes.

``make_router_app(config, lanes)`` creates the ``Router`` (kept under
``ROUTER_KEY``, its request path under ``FORWARDING_KEY``), routes the
endpoints to ``qwend.router.handlers`` and runs the upstream session and the
disconnect watchdog for as long as the app runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from qwend.config.model import RouterConfig
from qwend.router import handlers
from qwend.router.edges import json_errors
from qwend.router.metrics import METRICS_SOURCES_KEY
from qwend.router.router import FORWARDING_KEY, ROUTER_KEY, Router
from qwend.router.tracing import echo_request_id, tracing_middleware
from qwend.routing.classify import classify_chat, classify_completion
from qwend.routing.lanetable import LaneTable

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body the router's own port accepts."""


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    fwd = app[FORWARDING_KEY]
    await fwd.upstream.open()
    watcher = asyncio.create_task(fwd.watchdog.run(), name="router-disconnect-watch")
    prober = asyncio.create_task(app[ROUTER_KEY].prober.run(), name="router-lane-prober")
    try:
        yield
    finally:
        for task in (prober, watcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await fwd.upstream.close()


def _add_routes(app: web.Application) -> None:
    # partial() of the coroutine function itself: no wrapper frame per request.
    chat = partial(handlers.complete, path="/v1/chat/completions", classify=classify_chat)
    app.router.add_post("/v1/chat/completions", chat)
    completions = partial(handlers.complete, path="/v1/completions", classify=classify_completion)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/v1/models/{id:.+}", handlers.model)
    app.router.add_post("/tokenize", handlers.tokenize)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/metrics", handlers.metrics)


def make_router_app(
    config: RouterConfig,
    lanes: LaneTable,
    *,
    body_timeout_s: float = handlers.DEFAULT_BODY_TIMEOUT_S,
) -> web.Application:
    """The router's aiohttp application (serve it with any runner).

    ``body_timeout_s``: ``[connections] body_timeout_s``, the deadline of a request body.
    """
    router = Router(config, lanes)
    tracing = tracing_middleware(router.forwarding.access, "router")
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[tracing, json_errors])
    app.on_response_prepare.append(echo_request_id)
    app[handlers.BODY_TIMEOUT_KEY] = body_timeout_s
    app[ROUTER_KEY] = router
    app[FORWARDING_KEY] = router.forwarding
    app[METRICS_SOURCES_KEY] = []
    app.cleanup_ctx.append(_lifecycle)
    _add_routes(app)
    return app
