"""Streaming control responses: NDJSON (promotion progress, log follow) and SSE events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from qwend.api.messages import Event, LanesResponse, LaneStateChange, LogLine, Message
from qwend.broadcast import Broadcast
from qwend.control.context import ControlContext
from qwend.logs import get_logger
from qwend.promotion.promoter import Promotion

log = get_logger("control")

NDJSON = "application/x-ndjson"
EVENT_BUFFER = 1000
"""Events an SSE client may fall behind by before it loses the oldest."""


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
    merged: Broadcast[Event] = Broadcast(EVENT_BUFFER)  # a stalled client loses the oldest
    out = merged.subscribe()
    lane_events = ctx.supervisor.subscribe()
    progress = ctx.promoter.subscribe()

    async def pump_lanes() -> None:
        async for ev in lane_events:
            change = LaneStateChange(ev.lane, ev.old.value, ev.new.value, ev.reason, ev.at)
            merged.publish(Event.of(change))

    async def pump_promotions() -> None:
        async for item in progress:
            merged.publish(Event.of(item))

    async def tick() -> None:
        while interval > 0:
            merged.publish(Event.of(LanesResponse(lanes=ctx.lanes(ctx.router_snapshot()))))
            await asyncio.sleep(interval)

    tasks = [asyncio.create_task(f()) for f in (pump_lanes, pump_promotions, tick)]
    try:
        yield Event.of(ctx.daemon_info())
        async for event in out:
            yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lane_events.close()
        progress.close()
        out.close()


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
