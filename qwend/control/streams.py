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


GONE_POLL_S = 0.25
"""How often a stream checks that its client is still connected while nothing is sent."""


async def _client_gone(request: web.Request) -> None:
    """Returns once the client has closed its connection.

    aiohttp does not cancel a handler when its client goes away, and a stream that has
    nothing to send would not notice until its next write: so the transport is polled.
    """
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(GONE_POLL_S)


class ClientGone(Exception):
    """The client of a stream closed its connection."""


async def until_closing(
    ctx: ControlContext, source: AsyncIterator[Any], request: web.Request | None = None
) -> AsyncIterator[Any]:
    """Items of ``source`` until it ends or the daemon shuts down.

    With ``request``: raises ClientGone when that client disconnects meanwhile.
    """
    closing = asyncio.ensure_future(ctx.closing.wait())
    gone = asyncio.ensure_future(_client_gone(request)) if request is not None else None
    stops = {closing} if gone is None else {closing, gone}
    try:
        while True:
            nxt = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({nxt, *stops}, return_when=asyncio.FIRST_COMPLETED)
            if nxt not in done:
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
                if gone is not None and gone in done:
                    raise ClientGone
                return
            try:
                yield nxt.result()
            except StopAsyncIteration:
                return
    finally:
        closing.cancel()
        if gone is not None:
            gone.cancel()
        aclose: Callable[[], Any] | None = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


def _went_away(request: web.Request, what: str, **fields: object) -> None:
    """One info line for a client that disconnected: normal for Ctrl-C, never a traceback."""
    log.info("control client went away", path=request.path, what=what, **fields)


async def stream_promotion(
    request: web.Request, ctx: ControlContext, promotion: Promotion
) -> web.StreamResponse:
    """NDJSON of ``Event``: promotion_accepted, promotion (steps), promotion_result.

    The promotion runs on in the daemon if the client goes away.
    """
    response = await _open(request, NDJSON)
    try:
        await _write_line(response, Event.of(promotion.accepted))
        async for item in until_closing(ctx, promotion.progress(), request):
            await _write_line(response, Event.of(item))
        await response.write_eof()
    except (ConnectionError, ClientGone):
        _went_away(request, "promotion continues", id=promotion.id)
    return response


async def stream_log(
    request: web.Request, ctx: ControlContext, lane: str, tail: list[str]
) -> web.StreamResponse:
    """NDJSON of ``LogLine``: the tail, then new lines as the lane writes them."""
    response = await _open(request, NDJSON)
    try:
        for line in tail:
            await _write_line(response, LogLine(lane, line))
        async for line in until_closing(ctx, ctx.supervisor.follow_log(lane), request):
            await _write_line(response, LogLine(lane, line))
        await response.write_eof()
    except (ConnectionError, ClientGone):
        _went_away(request, "log follow", lane=lane)
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
    try:
        async for event in until_closing(ctx, _events(ctx, interval), request):
            await response.write(_sse(event))
        await response.write_eof()
    except (ConnectionError, ClientGone):
        _went_away(request, "event stream")
    return response
