"""The router: one OpenAI-compatible entry point in front of the lanes.

``make_router_app(config, lanes)`` builds the aiohttp application; the
``Router`` under ``ROUTER_KEY`` holds the live state (lane slots, queue,
breakers, statistics) and implements ``TrafficGate`` for the supervisor.
Per request: validate and classify (``qwend.routing.classify``), admit (a lane slot or
the FIFO queue), forward, retry on another lane while nothing reached the
client, relay, record. Handlers live in ``qwend.router.handlers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import ClientResponse, ClientSession, ClientTimeout, TCPConnector, web

from qwend.config.model import RouterConfig
from qwend.logs import get_logger
from qwend.router.admission import Admission, LaneRuntime
from qwend.router.exchange import Exchange
from qwend.router.recording import ClassRuntime, RouterCounters, build_snapshot
from qwend.routing.breaker import CircuitBreaker
from qwend.routing.classify import RequestClass, RequestSummary
from qwend.routing.lanetable import LaneTable, RoutableLane
from qwend.routing.policy import Decision, PolicyState, choose
from qwend.routing.snapshot import RouterSnapshot

log = get_logger("router")
WATCH_INTERVAL_S = 0.05
"""How often in-flight requests are checked for a vanished client (bounds abort latency)."""
_FORWARD_HEADERS = ("Authorization", "X-Request-Id")


class Router:
    """Live routing state; implements ``TrafficGate`` (``in_flight``, ``wait_drained``)."""

    def __init__(self, config: RouterConfig, lanes: LaneTable) -> None:
        self._config = config
        self._table = lanes
        self._runtimes: dict[str, LaneRuntime] = {}
        self._lanes: list[LaneRuntime] = []
        self._admission = Admission(config.queue_size, config.queue_timeout_s)
        self._policy_state = PolicyState()
        self.counters = RouterCounters()
        self.classes = {cls: ClassRuntime() for cls in RequestClass}
        self._session: ClientSession | None = None
        self._watched: dict[asyncio.Task[Any], Exchange] = {}
        self.upstream_timeout = ClientTimeout(total=None, sock_connect=config.connect_timeout_s)
        self._watch_wakeup = asyncio.Event()
        lanes.subscribe(self._on_lanes)
        self._on_lanes(lanes.snapshot())

    # ----- configuration and lane set -----

    @property
    def config(self) -> RouterConfig:
        """The router configuration in force."""
        return self._config

    def apply_config(self, config: RouterConfig) -> None:
        """Take a reloaded configuration (policy, limits, timeouts, breaker settings).

        The listen address and pooled-connection settings apply on the next start.
        """
        self._config = config
        self.upstream_timeout = ClientTimeout(total=None, sock_connect=config.connect_timeout_s)
        self._admission.queue_size = config.queue_size
        self._admission.queue_timeout_s = config.queue_timeout_s
        for runtime in self._runtimes.values():
            runtime.limit = config.max_in_flight_per_lane
            runtime.breaker.threshold = config.breaker_failure_threshold
            runtime.breaker.cooldown_s = config.breaker_cooldown_s
        self._admission.wake()

    def _on_lanes(self, lanes: tuple[RoutableLane, ...]) -> None:
        current: list[LaneRuntime] = []
        for lane in lanes:
            runtime = self._runtimes.get(lane.name)
            if runtime is None:
                cfg = self._config
                breaker = CircuitBreaker(cfg.breaker_failure_threshold, cfg.breaker_cooldown_s)
                runtime = LaneRuntime(lane, cfg.max_in_flight_per_lane, breaker)
                runtime._changed_at = time.monotonic()
                self._runtimes[lane.name] = runtime
            elif runtime.lane.base_url != lane.base_url or runtime.lane.variant != lane.variant:
                runtime.perf = type(runtime.perf)()  # another process now: relearn it
                runtime.lane = lane
            else:
                runtime.lane = lane
            current.append(runtime)
        names = {lane.name for lane in lanes}
        for name in [n for n, r in self._runtimes.items() if n not in names and r.in_flight == 0]:
            del self._runtimes[name]
        self._lanes = current
        self._admission.wake()

    # ----- TrafficGate -----

    def in_flight(self, lane: str) -> int:
        """Requests being served by ``lane`` (0 for an unknown lane)."""
        runtime = self._runtimes.get(lane)
        return runtime.in_flight if runtime is not None else 0

    async def wait_drained(self, lane: str, timeout: float) -> bool:
        """Wait until ``lane`` has nothing in flight; False when ``timeout`` passed first."""
        runtime = self._runtimes.get(lane)
        return True if runtime is None else await runtime.wait_drained(timeout)

    def total_in_flight(self) -> int:
        """Requests in flight on every lane."""
        return sum(r.in_flight for r in self._runtimes.values())

    @property
    def admission(self) -> Admission:
        """The queue in front of the lane slots."""
        return self._admission

    def runtime(self, name: str) -> LaneRuntime:
        """The live state of lane ``name`` (KeyError when unknown)."""
        return self._runtimes[name]

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return self._admission.queued

    def lanes(self) -> list[LaneRuntime]:
        """The current lanes' runtimes, in lane-table order."""
        return list(self._lanes)

    def stats_snapshot(self) -> RouterSnapshot:
        """A frozen picture of traffic, latency, queue and breakers."""
        return build_snapshot(self)

    # ----- session and background work -----

    @property
    def session(self) -> ClientSession:
        """The pooled upstream session (exists while the app runs)."""
        if self._session is None:
            raise RuntimeError("the router's client session is not open (app not started)")
        return self._session

    async def open(self) -> None:
        """Create the pooled upstream session."""
        connector = TCPConnector(
            limit=0, keepalive_timeout=self._config.upstream_keepalive_s, ttl_dns_cache=None
        )
        self._session = ClientSession(
            connector=connector, auto_decompress=False, timeout=self.upstream_timeout
        )

    async def close(self) -> None:
        """Close the pooled upstream session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def watch_disconnects(self) -> None:
        """Every 50 ms: cancel handlers whose client went away or whose time is up.

        A vanished client aborts its upstream request at once (aiohttp only cancels
        handlers itself with ``handler_cancellation=True``; this makes the router
        independent of the runner). Expiry of the first-byte and overall deadlines is
        checked here too, so no request pays for timers of its own.
        """
        while True:
            if not self._watched:
                self._watch_wakeup.clear()
                await self._watch_wakeup.wait()
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            for task, exchange in list(self._watched.items()):
                transport = exchange.request.transport
                if transport is None or transport.is_closing():
                    task.cancel()
                elif now >= exchange.expires_at and exchange.expired is None:
                    exchange.expired = "deadline"
                    task.cancel()

    # ----- the request path -----

    def pick(self, summary: RequestSummary, exclude: frozenset[str]) -> Decision:
        cfg = self._config
        return choose(
            summary,
            self._lanes,
            cfg.text_policy,
            long_text_min_tokens=cfg.long_text_min_tokens,
            state=self._policy_state,
            exclude=exclude,
        )

    def grant(self, decision: Decision, work: float) -> None:
        runtime = self._runtimes[decision.lane or ""]
        now = time.monotonic()
        runtime.occupy(now, work)
        runtime.breaker.on_attempt(now)

    def ungrant(self, decision: Decision, work: float) -> None:
        runtime = self._runtimes.get(decision.lane or "")
        if runtime is not None:
            runtime.release(time.monotonic(), work)
            runtime.breaker.on_neutral()
        self._admission.wake()

    def handle(
        self, request: web.Request, path: str, body: bytes, summary: RequestSummary
    ) -> Coroutine[Any, Any, web.StreamResponse]:
        """Route, forward and relay one completion request (await the result)."""
        return Exchange(self, request, path, body, summary).run()

    @property
    def watched(self) -> dict[asyncio.Task[Any], Exchange]:
        """In-flight exchanges by handler task (the watchdog's list)."""
        return self._watched

    def wake_watchdog(self) -> None:
        """Tell the watchdog there is something to watch again."""
        self._watch_wakeup.set()

    def finish(
        self, lane: LaneRuntime, resp: ClientResponse | None, verdict: bool | None, work: float
    ) -> None:
        now = time.monotonic()
        if resp is not None:
            if verdict is True:
                resp.release()
            else:
                resp.close()
        if verdict is True:
            lane.breaker.on_success()
        elif verdict is False:
            lane.counters.failures += 1
            lane.breaker.on_failure(now)
        else:
            lane.breaker.on_neutral()
        lane.release(now, work)
        self._admission.wake()


ROUTER_KEY: web.AppKey[Router] = web.AppKey("qwend_router", Router)
"""Where ``make_router_app`` keeps the ``Router``."""


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    router = app[ROUTER_KEY]
    await router.open()
    watcher = asyncio.create_task(router.watch_disconnects(), name="router-disconnect-watch")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await router.close()


def make_router_app(config: RouterConfig, lanes: LaneTable) -> web.Application:
    """The router's aiohttp application (serve it with any runner)."""
    from qwend.router.handlers import add_routes

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ROUTER_KEY] = Router(config, lanes)
    app.cleanup_ctx.append(_lifecycle)
    add_routes(app)
    return app
