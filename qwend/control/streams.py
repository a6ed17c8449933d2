"""Streaming control responses: NDJSON (promotion progress, log follow) and SSE events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from qwend.api.messages import Event, LanesResponse, LaneStateChange, LogLine, Message
from qwend.control.context import ControlContext
from qwend.logs import get_logger
from qwend.promotion.promoter import Promotion

log = get_logger("control")

NDJSON = "application/x-ndjson"


async def _open(request: web.Request, content_type: str) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


async def _write_line(response: web.StreamResponse, message: Message) -> None:
    await response.write(json.dumps(message.to_dict()).encode() + b"\n")


async def until_closing(ctx: ControlContext, source: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Items of ``source`` until it ends or the daemon shuts down."""
    closing = asyncio.ensure_future(ctx.closing.wait())
    try:
        while True:
            nxt = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({nxt, closing}, return_when=asyncio.FIRST_COMPLETED)
            if nxt not in done:
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
                return
            try:
                yield nxt.result()
            except StopAsyncIteration:
                return
    finally:
        closing.cancel()
        aclose: Callable[[], Any] | None = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def stream_promotion(request: web.Request, promotion: Promotion) -> web.StreamResponse:
    """NDJSON of ``Event``: promotion_accepted, promotion (steps), promotion_result.

    The promotion runs on in the daemon if the client goes away.
    """
    response = await _open(request, NDJSON)
    try:
        await _write_line(response, Event.of(promotion.accepted))
        async for item in promotion.progress():
            await _write_line(response, Event.of(item))
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        log.info("promotion client went away; promotion continues", id=promotion.id)
        raise
    return response


async def stream_log(
    request: web.Request, ctx: ControlContext, lane: str, tail: list[str]
) -> web.StreamResponse:
    """NDJSON of ``LogLine``: the tail, then new lines as the lane writes them."""
    response = await _open(request, NDJSON)
    with contextlib.suppress(ConnectionResetError):
        for line in tail:
            await _write_line(response, LogLine(lane, line))
        async for line in until_closing(ctx, ctx.supervisor.follow_log(lane)):
            await _write_line(response, LogLine(lane, line))
        await response.write_eof()
    return response


def _sse(event: Event) -> bytes:
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    return f"event: {event.kind.value}\ndata: {data}\n\n".encode()


async def _events(ctx: ControlContext, interval: float) -> AsyncIterator[Event]:
    """Lane changes, promotion progress and periodic stats, merged."""
    out: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
    lane_q = ctx.supervisor.subscribe()
    promo_q = ctx.promoter.subscribe()

    def put(event: Event) -> None:
        if not out.full():  # a stalled client loses events rather than growing memory
            out.put_nowait(event)

    async def pump_lanes() -> None:
        while True:
            ev = await lane_q.get()
            put(Event.of(LaneStateChange(ev.lane, str(ev.old), str(ev.new), ev.reason, ev.at)))

    async def pump_promotions() -> None:
        while True:
            put(Event.of(await promo_q.get()))

    async def tick() -> None:
        while interval > 0:
            put(Event.of(LanesResponse(lanes=ctx.lanes(ctx.router_snapshot()))))
            await asyncio.sleep(interval)

    tasks = [asyncio.create_task(f()) for f in (pump_lanes, pump_promotions, tick)]
    try:
        yield Event.of(ctx.daemon_info())
        while True:
            yield await out.get()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ctx.supervisor.unsubscribe(lane_q)
        ctx.promoter.unsubscribe(promo_q)


async def stream_events(request: web.Request, ctx: ControlContext) -> web.StreamResponse:
    """SSE: ``event: KIND`` + ``data: Event JSON``; first a ``hello`` with ``DaemonInfo``."""
    try:
        interval = float(request.query.get("stats_interval", ctx.stats_interval_s))
    except ValueError:
        raise web.HTTPBadRequest(text="stats_interval must be a number of seconds") from None
    response = await _open(request, "text/event-stream")
    with contextlib.suppress(ConnectionResetError):
        async for event in until_closing(ctx, _events(ctx, interval)):
            await response.write(_sse(event))
        await response.write_eof()
    return response
