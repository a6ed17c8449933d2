"""The sim lane's HTTP API (aiohttp app factory): an OpenAI-compatible vLLM look-alike."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from qwend import __version__
from qwend.sim.engine import SimSequence, TokenEvent
from qwend.sim.lane import SimLane
from qwend.sim.requests import (
    ApiError,
    GenerationRequest,
    bad,
    parse_generation,
    tokenize_ids,
)

LANE_KEY: web.AppKey[SimLane] = web.AppKey("sim_lane", SimLane)
"""The lane (settings, engine, metrics, faults) the app serves."""


def make_sim_app(lane: SimLane) -> web.Application:
    """Build the app for ``lane``; its engine loop runs while the app runs."""
    app = web.Application(middlewares=[_errors, _api_key])
    app[LANE_KEY] = lane
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/version", version)
    app.cleanup_ctx.append(_engine_ctx)
    return app


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    lane = app[LANE_KEY]
    task = asyncio.create_task(lane.engine.run(), name="sim-engine")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn ``ApiError`` (and unknown routes) into OpenAI-style error bodies."""
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = ApiError(exc.status, exc.reason, type="invalid_request_error")
        return web.json_response(error.body(), status=exc.status)
    except Exception as exc:  # a boundary: a bug becomes a 500 body, not a dropped request
        request.app[LANE_KEY].log.exception("request failed", path=request.path)
        error = ApiError(500, f"internal error in qwend-sim: {exc}", type="server_error")
        return web.json_response(error.body(), status=500)
    return response


@web.middleware
async def _api_key(request: web.Request, handler: Any) -> web.StreamResponse:
    """With ``--api-key``, ``/v1`` routes answer 401 without the key, as vLLM's do."""
    key = request.app[LANE_KEY].settings.api_key
    if key and request.path.startswith("/v1"):
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
            return web.json_response({"error": "Unauthorized"}, status=401)
    response: web.StreamResponse = await handler(request)
    return response


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(f"the request body is not valid JSON: {exc}") from None


async def health(request: web.Request) -> web.Response:
    """200 when serving; hangs forever with ``--hang-health``."""
    if request.app[LANE_KEY].faults.hang_health:
        await asyncio.Event().wait()
    return web.Response(status=200)


async def models(request: web.Request) -> web.Response:
    """The one served model, with its context length and NPUs."""
    lane = request.app[LANE_KEY]
    s = lane.settings
    entry = {
        "id": s.served_model_name,
        "object": "model",
        "created": int(lane.started_at),
        "owned_by": "qwend-sim",
        "root": s.served_model_name,
        "parent": None,
        "max_model_len": s.max_model_len,
        "metadata": {
            "ascend_rt_visible_devices": s.visible_devices,
            "variant": s.variant,
            "lane": s.lane_name,
        },
    }
    return web.json_response({"object": "list", "data": [entry]})


async def version(request: web.Request) -> web.Response:
    """Like vLLM's ``/version``."""
    return web.json_response({"version": f"{__version__}+qwend-sim"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = request.app[LANE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def tokenize(request: web.Request) -> web.Response:
    """vLLM's ``/tokenize``: ``{"count", "max_model_len", "tokens"}``."""
    lane = request.app[LANE_KEY]
    ids = tokenize_ids(await _json_body(request), served_model=lane.settings.served_model_name)
    return web.json_response(
        {
            "count": len(ids),
            "max_model_len": lane.settings.max_model_len,
            "tokens": ids,
            "token_strs": None,
        }
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    return await _generate(request, "chat")


async def completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/completions``."""
    return await _generate(request, "completion")


async def _generate(request: web.Request, kind: str) -> web.StreamResponse:
    lane = request.app[LANE_KEY]
    body = await _json_body(request)
    parsed = parse_generation(
        body,
        kind,
        served_model=lane.settings.served_model_name,
        max_model_len=lane.settings.max_model_len,
    )
    injected = lane.faults.next_error()
    if injected is not None:
        lane.request_done()
        raise injected
    seq = lane.new_sequence(parsed)
    try:
        if parsed.stream:
            return await _stream(request, parsed, seq)
        response = await _whole(parsed, seq)
        # Send it now, so an injected exit after this request cannot cut it off.
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await response.write_eof()
        return response
    finally:
        if lane.engine.abort(seq):
            lane.log.info("request aborted", request_id=seq.request_id, reason="client gone")
        else:
            lane.log.info(
                "request finished",
                request_id=seq.request_id,
                prompt_tokens=parsed.prompt_tokens,
                completion_tokens=seq.generated,
                finish_reason=seq.finish_reason,
                stream=parsed.stream,
            )
        lane.request_done()


def _usage(parsed: GenerationRequest, seq: SimSequence) -> dict[str, int]:
    return {
        "prompt_tokens": parsed.prompt_tokens,
        "completion_tokens": seq.generated,
        "total_tokens": parsed.prompt_tokens + seq.generated,
    }


def _response_id(parsed: GenerationRequest, seq: SimSequence) -> str:
    prefix = "chatcmpl" if parsed.kind == "chat" else "cmpl"
    return f"{prefix}-{seq.request_id}"


async def _whole(parsed: GenerationRequest, seq: SimSequence) -> web.Response:
    finish: str | None = None
    while finish is None:
        finish = (await seq.events.get()).finish_reason
    if parsed.kind == "chat":
        choice: dict[str, object] = {
            "index": 0,
            "message": {"role": "assistant", "content": seq.text},
            "logprobs": None,
            "finish_reason": finish,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": seq.text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return web.json_response(
        {
            "id": _response_id(parsed, seq),
            "object": obj,
            "created": int(time.time()),
            "model": parsed.model,
            "choices": [choice],
            "usage": _usage(parsed, seq),
        }
    )


class _SseWriter:
    """Writes OpenAI stream chunks for one request."""

    def __init__(self, response: web.StreamResponse, parsed: GenerationRequest, seq: SimSequence):
        self.response = response
        self.parsed = parsed
        self.base: dict[str, object] = {
            "id": _response_id(parsed, seq),
            "object": "chat.completion.chunk" if parsed.kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": parsed.model,
        }

    async def send(self, payload: dict[str, object]) -> None:
        data = json.dumps({**self.base, **payload}, separators=(",", ":"))
        await self.response.write(f"data: {data}\n\n".encode())

    async def token(self, event: TokenEvent, first: bool) -> None:
        if self.parsed.kind == "chat":
            delta: dict[str, object] = {"content": event.text}
            if first:
                delta = {"role": "assistant", **delta}
            choice: dict[str, object] = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": event.text}
        choice |= {"logprobs": None, "finish_reason": event.finish_reason}
        await self.send({"choices": [choice]})


async def _stream(
    request: web.Request, parsed: GenerationRequest, seq: SimSequence
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    writer = _SseWriter(response, parsed, seq)
    first = True
    finish: str | None = None
    try:
        while finish is None:
            event = await seq.events.get()
            finish = event.finish_reason
            await writer.token(event, first)
            first = False
        if parsed.include_usage:
            await writer.send({"choices": [], "usage": _usage(parsed, seq)})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away; the caller aborts the sequence
    return response
