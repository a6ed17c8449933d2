"""The stats stream: one frame per tick for all watchers, sent to each as a delta.

Building a frame (router snapshot, lane views, NPU view) is the costly part, so
a ``StatsHub`` does it once per tick whatever the number of watchers, and only
while someone watches; each watcher then costs one small write per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from qwend.api.stats import (
    ClassSample,
    NpuSample,
    StatsFrame,
    StatsUpdate,
    diff_frames,
    full_update,
    steady_lane,
)
from qwend.broadcast import Broadcast, Subscription
from qwend.control.context import ControlContext
from qwend.control.streams import until_closing

MIN_INTERVAL_S = 0.2
"""Watchers may not ask for faster ticks than this (each tick snapshots the router)."""
HUB_BUFFER = 64
"""Updates a watcher may fall behind by; past that it gets a full frame again."""


def _ms(seconds: object) -> float | None:
    return round(seconds * 1000.0, 1) if isinstance(seconds, int | float) else None


def class_samples(snapshot: object | None) -> tuple[ClassSample, ...]:
    """Per-class latency from a ``RouterSnapshot`` (read by attribute, like the views)."""
    out: list[ClassSample] = []
    for cls in getattr(snapshot, "classes", ()):
        latency = getattr(cls, "latency", None)
        out.append(
            ClassSample(
                name=str(cls.name),
                requests=int(getattr(cls, "requests", 0)),
                errors=int(getattr(cls, "errors", 0)),
                ttft_p50_ms=_ms(getattr(getattr(latency, "ttft", None), "p50", None)),
                e2e_p95_ms=_ms(getattr(getattr(latency, "e2e", None), "p95", None)),
                tokens_per_s=float(getattr(latency, "tokens_per_s", 0.0) or 0.0),
            )
        )
    return tuple(out)


def npu_samples(view: object | None) -> tuple[tuple[NpuSample, ...], str]:
    """Chips of the monitor's ``NpuView`` and, when there are none, why."""
    if view is None:
        return (), "no NPU reading yet"
    if not getattr(view, "enabled", False):
        return (), "NPU monitor disabled"
    reading = getattr(view, "reading", None)
    if reading is None:
        return (), str(getattr(view, "error", None) or "no NPU reading yet")
    lane_npus: Mapping[str, tuple[int, ...]] = getattr(view, "lane_npus", {}) or {}
    out: list[NpuSample] = []
    for npu in reading.npus:
        for chip in npu.chips:
            lanes = tuple(sorted(n for n, devs in lane_npus.items() if chip.device in devs))
            out.append(
                NpuSample(
                    npu=npu.id,
                    chip=chip.chip,
                    name=chip.name,
                    health=chip.health,
                    aicore_pct=chip.aicore_pct,
                    hbm_used_mb=chip.used_mb,
                    hbm_total_mb=chip.total_mb,
                    lanes=lanes,
                )
            )
    note = "NPU reading is stale" if getattr(view, "stale", False) else ""
    return tuple(out), note


def build_frame(ctx: ControlContext) -> StatsFrame:
    """Everything the live views show, now."""
    snapshot = ctx.router_snapshot()
    npus, note = npu_samples(ctx.monitor_view()) if ctx.monitor else ((), "NPU monitor disabled")
    return StatsFrame(
        at=time.time(),
        started_at=ctx.started_at,
        lanes=tuple(steady_lane(lane) for lane in ctx.lanes(snapshot)),
        active=dict(ctx.supervisor.active_lanes()),
        classes=class_samples(snapshot),
        npus=npus,
        npu_note=note,
        promotions=tuple(ctx.promoter.running()),
    )


class StatsHub:
    """Ticks every ``interval_s`` while it has watchers; publishes one delta per tick."""

    def __init__(self, build: Callable[[], StatsFrame], interval_s: float) -> None:
        self.build = build
        self.interval_s = interval_s
        self._broadcast: Broadcast[StatsUpdate] = Broadcast(HUB_BUFFER)
        self._frame: StatsFrame | None = None
        self._seq = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def watchers(self) -> int:
        return self._broadcast.subscribers

    def current(self) -> StatsUpdate:
        """The whole current frame (what a new or lagging watcher starts from)."""
        if self._frame is None:
            self._frame = self.build()
        return full_update(self._seq, self._frame)

    def subscribe(self) -> Subscription[StatsUpdate]:
        subscription = self._broadcast.subscribe(replay=[self.current()])
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return subscription

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                if not self._broadcast.subscribers:
                    return  # nobody watches: stop building frames
                new = self.build()
                self._seq += 1
                old, self._frame = self._frame, new
                self._broadcast.publish(
                    full_update(self._seq, new) if old is None else diff_frames(self._seq, old, new)
                )
        finally:
            self._task, self._frame = None, None

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def hub_for(ctx: ControlContext, hubs: dict[float, StatsHub], interval_s: float) -> StatsHub:
    """The shared hub ticking at ``interval_s`` (one per distinct interval asked for)."""
    hub = hubs.get(interval_s)
    if hub is None:
        hub = hubs[interval_s] = StatsHub(lambda: build_frame(ctx), interval_s)
    return hub


def _line(update: StatsUpdate) -> bytes:
    return json.dumps(update.to_dict(), separators=(",", ":")).encode() + b"\n"


def interval_from(query: Mapping[str, str], default: float) -> float:
    """The ``interval`` query parameter, checked and clamped to ``MIN_INTERVAL_S``."""
    raw: Any = query.get("interval", default)
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="interval must be a number of seconds") from None
    if not value > 0 or value > 3600:
        raise web.HTTPBadRequest(text="interval must be between 0 and 3600 seconds")
    return max(MIN_INTERVAL_S, value)


async def stream_stats(
    request: web.Request, ctx: ControlContext, hub: StatsHub
) -> web.StreamResponse:
    """NDJSON ``StatsUpdate``: the whole frame, then one delta per tick."""
    response = web.StreamResponse(
        headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError), hub.subscribe() as subscription:
        dropped, skip_to = 0, -1
        async for update in until_closing(ctx, subscription):
            if subscription.dropped != dropped:
                # This watcher lagged and lost deltas: start it over from the whole frame.
                dropped = subscription.dropped
                update = hub.current()
                skip_to = update.seq
            elif update.seq <= skip_to:
                continue
            await response.write(_line(update))
        await response.write_eof()
    return response
