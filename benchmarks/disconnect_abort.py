"""How soon does qwend's router abort the lane's request after its client goes away?

The router checks in-flight requests for a vanished client every
``WATCH_INTERVAL_S`` (50 ms), so the upstream request should be cancelled within
about that, plus a loop turn. This measures it: a hanging upstream (an aiohttp
app that never answers, or streams one chunk and then stalls) behind the real
router app, served as the daemon serves it (aiohttp's own handler cancellation
off); a client sends a request, waits until the upstream has it, and closes its
connection. The latency is from that close to the moment the upstream handler
is cancelled. Everything runs in this one process and loop.

    .venv/bin/python benchmarks/disconnect_abort.py                   # 200 trials per mode
    .venv/bin/python benchmarks/disconnect_abort.py --trials 50 --json out.json

tests/router/test_admission.py checks that the abort happens, with a bound
generous enough for a loaded machine; the figure is here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from qwend.config.model import RouterConfig
from qwend.router.app import make_router_app
from qwend.router.watchdog import WATCH_INTERVAL_S
from qwend.routing.lanetable import LaneTable, RoutableLane

_CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'


@dataclass
class Upstream:
    """The hanging lane: when each request arrived and when its handler was cancelled."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    aborted_at: float = 0.0

    def reset(self) -> None:
        self.arrived = asyncio.Event()
        self.aborted = asyncio.Event()


def upstream_app(state: Upstream) -> web.Application:
    async def complete(request: web.Request) -> web.StreamResponse:
        doc = await request.json()
        try:
            if doc.get("stream"):
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                await resp.write(_CHUNK)
            state.arrived.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")
        except asyncio.CancelledError:
            state.aborted_at = time.monotonic()
            state.aborted.set()
            raise

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    return app


@contextlib.asynccontextmanager
async def serve(app: web.Application, *, handler_cancellation: bool) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def one_trial(
    session: aiohttp.ClientSession, url: str, state: Upstream, stream: bool
) -> float:
    """Seconds from the client's close to the upstream handler's cancellation."""
    state.reset()
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "stream": stream,
    }

    first_chunk = asyncio.Event()

    async def client() -> None:
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            await resp.content.readuntil(b"\n\n")
            first_chunk.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(client())
    # A plain request is in flight once the lane has it; a stream once its first chunk arrived.
    await asyncio.wait_for((first_chunk if stream else state.arrived).wait(), 10)
    closed = time.monotonic()
    task.cancel()  # closes the client's connection
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(state.aborted.wait(), 10)
    return state.aborted_at - closed


@dataclass(frozen=True)
class Row:
    """Abort latency of one mode, in milliseconds."""

    mode: str
    """``plain`` (the lane has not answered) or ``stream`` (it sent one chunk and stalled)."""
    trials: int
    """Disconnects measured."""
    p50_ms: float
    """Median latency from the client's close to the upstream cancellation."""
    p95_ms: float
    """95th percentile."""
    max_ms: float
    """Slowest trial."""


async def measure(trials: int, modes: Sequence[str]) -> list[Row]:
    state = Upstream()
    rows = []
    async with serve(upstream_app(state), handler_cancellation=True) as lane_url:
        lane = RoutableLane("lane", "throughput", "v3", lane_url, True, False, True, True, "m")
        app = make_router_app(RouterConfig(), LaneTable((lane,)))
        async with (
            serve(app, handler_cancellation=False) as router_url,
            aiohttp.ClientSession() as session,
        ):
            for mode in modes:
                ms = [
                    1000 * await one_trial(session, router_url, state, mode == "stream")
                    for _ in range(trials)
                ]
                ms.sort()
                p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
                rows.append(Row(mode, trials, statistics.median(ms), p95, ms[-1]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--modes", nargs="+", default=["plain", "stream"], choices=["plain", "stream"])
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    rows = asyncio.run(measure(args.trials, args.modes))
    print(f"watch interval: {WATCH_INTERVAL_S * 1000:.0f} ms\n")
    print("| mode | trials | p50 ms | p95 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r.mode} | {r.trials} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.max_ms:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
