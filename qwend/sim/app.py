"""The sim lane's HTTP API (aiohttp app factory): an OpenAI-compatible vLLM look-alike."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from qwend import __version__
from qwend.sim import kvtransfer
from qwend.sim.engine import SimSequence, TokenEvent
from qwend.sim.kvtransfer import RemoteDecode, RemotePrefill, transfer_error
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
HTTP_KEY: web.AppKey[aiohttp.ClientSession] = web.AppKey("sim_http", aiohttp.ClientSession)
"""A decode lane's client for pulling KV from prefill lanes."""
CLAIM_PATH = "/kv/claim"
"""Where a prefill lane hands its KV to a decode lane (the sim's stand-in for Mooncake's
transfer engine reading the blocks)."""


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
    app.router.add_post(CLAIM_PATH, claim_kv)
    app.cleanup_ctx.append(_engine_ctx)
    app.cleanup_ctx.append(_http_ctx)
    return app


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    lane = app[LANE_KEY]
    task = asyncio.create_task(lane.engine.run(), name="sim-engine")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=app[LANE_KEY].settings.kv.pull_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[HTTP_KEY] = session
        yield


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
    """200 when serving; 503 once a DP engine is lost; hangs forever with ``--hang-health``."""
    lane = request.app[LANE_KEY]
    if lane.faults.hang_health:
        await asyncio.Event().wait()
    if lane.failure is not None:
        return web.Response(status=503, text=lane.failure)
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
    kv = kvtransfer.parse_params(body) if lane.settings.kv.role != "both" else None
    parsed = _kv_limits(lane.settings.kv.role, kv, parsed)
    if lane.settings.kv.role == "decode" and isinstance(kv, RemotePrefill):
        await _pull_kv(request.app, kv, parsed)
    elif lane.settings.kv.role == "decode" and lane.settings.kv.without_kv == "refuse":
        raise transfer_error(
            "this decode lane (--kv-without refuse) only takes requests with "
            f"'{kvtransfer.PARAM}' from a prefill lane (do_remote_prefill: true)"
        )
    injected = lane.faults.next_error()
    if injected is not None:
        lane.request_done()
        raise injected
    seq = lane.new_sequence(parsed, prefilled=isinstance(kv, RemotePrefill))
    try:
        if parsed.stream:
            return await _stream(request, parsed, seq)
        response = await _whole(parsed, seq)
        if isinstance(kv, RemoteDecode) and seq.finish_reason is not None:
            response = _with_kv_params(lane, parsed, seq, response)
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


def _kv_limits(
    role: str, kv: RemoteDecode | RemotePrefill | None, parsed: GenerationRequest
) -> GenerationRequest:
    """Refuse the half of the handshake this lane does not do; a prefill for a remote
    decode answers one token, as vLLM's proxies ask with ``max_tokens`` 1."""
    if role == "prefill" and isinstance(kv, RemotePrefill):
        raise transfer_error(
            "this is a prefill lane (--kv-role prefill): it does not decode from "
            "remote KV (do_remote_prefill)"
        )
    if role == "decode" and isinstance(kv, RemoteDecode):
        raise transfer_error(
            "this is a decode lane (--kv-role decode): it does not prefill for a "
            "remote decode (do_remote_decode)"
        )
    if isinstance(kv, RemoteDecode):
        if parsed.stream:
            raise transfer_error("a prefill for a remote decode cannot stream; send stream: false")
        return dataclasses.replace(parsed, max_tokens=1, natural_tokens=None)
    return parsed


async def _pull_kv(app: web.Application, kv: RemotePrefill, parsed: GenerationRequest) -> None:
    """Claim the KV from the prefill lane named in the parameters; ``ApiError`` if it
    cannot be had or does not belong to this request's prompt."""
    host = f"[{kv.host}]" if ":" in kv.host else kv.host
    where = f"{kv.host}:{kv.port}"
    claim = {
        "remote_request_id": kv.request_id,
        "remote_engine_id": kv.engine_id,
        "remote_block_ids": list(kv.block_ids),
    }
    try:
        async with app[HTTP_KEY].post(f"http://{host}:{kv.port}{CLAIM_PATH}", json=claim) as r:
            answer = await r.json(content_type=None)
            status = r.status
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        raise transfer_error(
            f"cannot pull the KV from the prefill lane at {where}: {exc or type(exc).__name__}"
        ) from None
    if status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        reason = error.get("message") if isinstance(error, dict) else f"HTTP {status}"
        raise transfer_error(f"the prefill lane at {where} has no KV to give: {reason}")
    if answer.get("model") != parsed.model or answer.get("prompt_tokens") != parsed.prompt_tokens:
        raise transfer_error(
            f"the KV pulled from {where} is for a {answer.get('prompt_tokens')}-token prompt "
            f"of {answer.get('model')!r}; this request has {parsed.prompt_tokens} tokens "
            f"of {parsed.model!r}"
        )


async def claim_kv(request: web.Request) -> web.Response:
    """``POST /kv/claim`` on a prefill lane: hand one request's KV to a decode lane."""
    lane = request.app[LANE_KEY]
    if lane.settings.kv.role != "prefill":
        raise transfer_error("this lane keeps no KV for decode lanes (not --kv-role prefill)", 404)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    request_id, engine_id, block_ids = kvtransfer.parse_claim(body)
    record = lane.kv_store.claim(request_id, engine_id, block_ids, lane.engine.now())
    lane.log.info("KV claimed", request_id=record.request_id, blocks=len(record.block_ids))
    return web.json_response(
        {"model": record.model, "prompt_tokens": record.prompt_tokens, "seed": record.seed}
    )


def _with_kv_params(
    lane: SimLane, parsed: GenerationRequest, seq: SimSequence, response: web.Response
) -> web.Response:
    """Keep the prefilled KV and tell the caller where (``kv_transfer_params``)."""
    record = lane.kv_store.put(
        seq.request_id,
        model=parsed.model,
        prompt_tokens=parsed.prompt_tokens,
        seed=parsed.seed,
        now=lane.engine.now(),
    )
    s = lane.settings
    assert response.text is not None  # _whole builds a JSON response
    body = json.loads(response.text)
    host = s.kv.advertise_host or s.host
    body[kvtransfer.PARAM] = kvtransfer.response_params(record, host, s.port)
    return web.json_response(body)


def _timing(seq: SimSequence) -> dict[str, object]:
    """The sim's own account of where the time to first token went (real seconds)."""
    first = seq.first_token_at
    return {
        "prefill_s": round(seq.prefill_s, 6),
        "ttft_s": None if first is None else round(first - seq.arrival, 6),
        "kv_from_remote": seq.prefilled,
    }


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
            "sim_timing": _timing(seq),
        }
    )


class _SseWriter:
    """Writes OpenAI stream chunks for one request."""

    def __init__(self, response: web.StreamResponse, parsed: GenerationRequest, seq: SimSequence):
        self.response = response
        self.parsed = parsed
        self.seq = seq
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
        payload: dict[str, object] = {"choices": [choice]}
        if event.finish_reason is not None:
            payload["sim_timing"] = _timing(self.seq)
        await self.send(payload)


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
