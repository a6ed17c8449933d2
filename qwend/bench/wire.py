"""One benchmark request over HTTP (aiohttp): timings, tokens and the serving lane."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping

import aiohttp

from qwend.bench.payload import chat_body
from qwend.bench.results import RequestRecord
from qwend.bench.scenarios import RequestShape

LANE_HEADER = "X-Qwend-Lane"
"""Set by qwend's router on every answer: the lane that served it."""


async def send(
    session: aiohttp.ClientSession,
    base_url: str,
    model: str,
    shape: RequestShape,
    start_s: float,
    *,
    stream: bool | None = None,
) -> RequestRecord:
    """Send one chat completion and measure it; failures become records, never exceptions."""
    body = chat_body(shape, model, stream=stream)
    url = base_url.rstrip("/") + "/v1/chat/completions"
    began = time.perf_counter()
    try:
        async with session.post(url, json=body) as resp:
            lane = resp.headers.get(LANE_HEADER, "")
            if resp.status != 200:
                text = (await resp.text())[:200]
                return _failure(start_s, began, f"HTTP {resp.status}: {text}", lane, shape)
            if body["stream"]:
                return await _streamed(resp, start_s, began, lane, shape)
            data = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return _failure(start_s, began, f"{type(exc).__name__}: {exc}", "", shape)
    e2e = time.perf_counter() - began
    usage = data.get("usage") or {}
    return RequestRecord(
        start_s=start_s,
        ok=True,
        e2e_s=e2e,
        ttft_s=e2e,
        output_tokens=int(usage.get("completion_tokens", 0)),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        lane=lane,
        kind=shape.label,
    )


def _failure(
    start_s: float, began: float, error: str, lane: str, shape: RequestShape
) -> RequestRecord:
    return RequestRecord(
        start_s=start_s,
        ok=False,
        e2e_s=time.perf_counter() - began,
        lane=lane,
        kind=shape.label,
        error=error,
    )


async def _streamed(
    resp: aiohttp.ClientResponse, start_s: float, began: float, lane: str, shape: RequestShape
) -> RequestRecord:
    """Read server-sent events to ``[DONE]``: first content, gaps between chunks, usage."""
    first: float | None = None
    last = began
    gaps: list[float] = []
    chunks = 0
    usage: dict[str, int] = {}
    done = False
    async for raw in resp.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            break
        event = json.loads(data)
        if "error" in event:
            return _failure(start_s, began, f"stream error: {event['error']}", lane, shape)
        usage = event.get("usage") or usage
        if any(_has_content(choice) for choice in event.get("choices") or ()):
            now = time.perf_counter()
            if first is None:
                first = now
            else:
                gaps.append(now - last)
            last = now
            chunks += 1
    if not done:
        return _failure(start_s, began, "stream ended before [DONE]", lane, shape)
    end = time.perf_counter()
    return RequestRecord(
        start_s=start_s,
        ok=True,
        e2e_s=end - began,
        ttft_s=(first if first is not None else end) - began,
        itl_s=tuple(gaps),
        output_tokens=int(usage.get("completion_tokens", chunks)),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        lane=lane,
        kind=shape.label,
    )


def _has_content(choice: dict[str, object]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(delta.get("content") or delta.get("reasoning_content"))
    return bool(choice.get("text"))


async def first_model(
    base_url: str,
    timeout_s: float = 10.0,
    *,
    headers: Mapping[str, str] | None = None,
    tls: ssl.SSLContext | bool = True,
) -> str:
    """The first model id ``/v1/models`` lists ("" when it cannot say), as vLLM's bench does."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, headers=dict(headers or {})) as session,
            session.get(base_url.rstrip("/") + "/v1/models", ssl=tls) as resp,
        ):
            data = await resp.json() if resp.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return ""
    models = data.get("data") if isinstance(data, dict) else None
    if isinstance(models, list) and models and isinstance(models[0], dict):
        return str(models[0].get("id", ""))
    return ""
