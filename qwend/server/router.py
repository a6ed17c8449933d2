"""The router: one OpenAI-compatible entry point in front of the lanes.

``make_router_app(config, lanes)`` builds the aiohttp application; the
``Router`` under ``ROUTER_KEY`` holds the live state (lane slots, queue,
breakers, statistics) and implements ``TrafficGate`` for the supervisor.
Per request: validate and classify (``qwend.routing``), admit (a lane slot or
the FIFO queue), forward, retry on another lane while nothing reached the
client, relay, record. Handlers live in ``qwend.server.router_http``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import ClientResponse, ClientSession, ClientTimeout, TCPConnector, web

from qwend.breaker import CircuitBreaker
from qwend.config import RouterConfig
from qwend.lanetable import LaneTable, RoutableLane
from qwend.logs import get_logger
from qwend.routing import Decision, PolicyState, RequestClass, RequestSummary, choose
from qwend.server.admission import Admission, LaneRuntime, QueueFull, QueueTimeout
from qwend.server.proxy import (
    ATTEMPTS_HEADER,
    LANE_HEADER,
    RETRYABLE_STATUSES,
    UPSTREAM_ERRORS,
    Failure,
    StreamResult,
    connection_failure,
    error_response,
    read_failure,
    relay_stream,
)
from qwend.server.router_stats import (
    ClassRuntime,
    RouterCounters,
    build_snapshot,
    record_stream,
    record_whole,
)
from qwend.stats import RouterSnapshot

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
        self._watched: dict[asyncio.Task[object], web.Request] = {}
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
            connector=connector, auto_decompress=False, timeout=ClientTimeout(total=None)
        )

    async def close(self) -> None:
        """Close the pooled upstream session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def watch_disconnects(self) -> None:
        """Cancel handlers whose client went away (aborts the upstream request at once).

        aiohttp only cancels handlers itself when the runner was made with
        ``handler_cancellation=True``; this loop makes the router independent of that.
        """
        while True:
            if not self._watched:
                self._watch_wakeup.clear()
                await self._watch_wakeup.wait()
            await asyncio.sleep(WATCH_INTERVAL_S)
            for task, request in list(self._watched.items()):
                transport = request.transport
                if transport is None or transport.is_closing():
                    task.cancel()

    # ----- the request path -----

    def _pick(self, summary: RequestSummary, exclude: frozenset[str]) -> Decision:
        cfg = self._config
        return choose(
            summary,
            self._lanes,
            cfg.text_policy,
            long_text_min_tokens=cfg.long_text_min_tokens,
            state=self._policy_state,
            exclude=exclude,
        )

    def _grant(self, decision: Decision, work: float) -> None:
        runtime = self._runtimes[decision.lane or ""]
        now = time.monotonic()
        runtime.occupy(now, work)
        runtime.breaker.on_attempt(now)

    def _ungrant(self, decision: Decision, work: float) -> None:
        runtime = self._runtimes.get(decision.lane or "")
        if runtime is not None:
            runtime.release(time.monotonic(), work)
            runtime.breaker.on_neutral()
        self._admission.wake()

    async def handle(
        self, request: web.Request, path: str, body: bytes, summary: RequestSummary
    ) -> web.StreamResponse:
        """Route, forward and relay one completion request."""
        cfg = self._config
        start = time.monotonic()
        deadline = start + cfg.request_timeout_s
        klass = self.classes[summary.request_class(cfg.long_text_min_tokens)]
        klass.requests += 1
        self.counters.requests += 1
        work = float(summary.expected_output)
        task = asyncio.current_task()
        if task is not None:
            if not self._watched:
                self._watch_wakeup.set()
            self._watched[task] = request
        try:
            response = await self._route(request, path, body, summary, klass, start, deadline, work)
        except asyncio.CancelledError:
            self.counters.client_disconnects += 1
            raise
        finally:
            if task is not None:
                self._watched.pop(task, None)
        if response.status >= 400:
            klass.errors += 1
        return response

    async def _route(
        self,
        request: web.Request,
        path: str,
        body: bytes,
        summary: RequestSummary,
        klass: ClassRuntime,
        start: float,
        deadline: float,
        work: float,
    ) -> web.StreamResponse:
        tried: list[str] = []
        last: Failure | None = None
        while True:
            exclude = frozenset(tried)
            try:
                decision = await self._admission.admit(
                    partial(self._pick, summary, exclude),
                    lambda d: self._grant(d, work),
                    lambda d: self._ungrant(d, work),
                    deadline - time.monotonic(),
                )
            except QueueFull:
                self.counters.rejected_queue_full += 1
                return error_response(
                    429,
                    f"the router's queue is full ({self._admission.queue_size} requests waiting);"
                    " retry later",
                    code="queue_full",
                    retry_after=1,
                )
            except QueueTimeout:
                self.counters.rejected_queue_full += 1
                return error_response(
                    429,
                    "no lane slot became free within the queue timeout; retry later",
                    code="queue_timeout",
                    retry_after=1,
                )
            if decision.lane is None:
                if last is not None:
                    return last.response(len(tried))
                self.counters.rejected_no_lane += 1
                return error_response(
                    503, decision.message, code="no_lane_available", retry_after=5
                )
            runtime = self._runtimes[decision.lane]
            tried.append(runtime.name)
            if decision.spilled:
                self.counters.spills += 1
                runtime.counters.spills += 1
            outcome = await self._attempt(
                request, runtime, path, body, summary, klass, start, deadline, len(tried), work
            )
            if not isinstance(outcome, Failure):
                return outcome
            last = outcome
            if len(tried) > self._config.retry_budget or time.monotonic() >= deadline:
                return outcome.response(len(tried))
            runtime.counters.retried_away += 1
            self.counters.retries += 1

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        for name in _FORWARD_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        return headers

    async def _attempt(
        self,
        request: web.Request,
        lane: LaneRuntime,
        path: str,
        body: bytes,
        summary: RequestSummary,
        klass: ClassRuntime,
        start: float,
        deadline: float,
        attempts: int,
        work: float,
    ) -> web.StreamResponse | Failure:
        """One try on one lane; its slot is already claimed and is released here."""
        cfg = self._config
        began = time.monotonic()
        integral0 = lane.integral_now(began)
        resp: ClientResponse | None = None
        verdict: bool | None = None  # True ok, False lane failure, None neutral
        try:
            timeout = ClientTimeout(
                total=max(0.001, deadline - began),
                sock_connect=cfg.connect_timeout_s,
                sock_read=cfg.first_byte_timeout_s,
            )
            try:
                resp = await self.session.post(
                    lane.lane.base_url + path,
                    data=body,
                    headers=self._headers(request),
                    timeout=timeout,
                )
            except UPSTREAM_ERRORS as exc:
                verdict = False
                return connection_failure(lane.name, exc, "to connect or answer")
            status = resp.status
            if status in RETRYABLE_STATUSES:
                failure = await read_failure(lane.name, resp)
                verdict = False if failure.breaker_failure else None
                return failure
            headers = {LANE_HEADER: lane.name, ATTEMPTS_HEADER: str(attempts)}
            if summary.stream and status == 200 and resp.content_type == "text/event-stream":
                try:
                    first = await resp.content.readany()
                except UPSTREAM_ERRORS as exc:
                    verdict = False
                    return connection_failure(lane.name, exc, "before its first token")
                if not first:
                    verdict = False
                    return connection_failure(lane.name, EOFError("empty stream"), "at once")
                headers["Cache-Control"] = "no-cache"
                headers["X-Accel-Buffering"] = "no"
                verdict, out, result = await self._relay(request, resp, first, headers, lane, klass)
                record_stream(lane, klass, summary, start, began, integral0, result)
                return out
            try:
                data = await resp.read()
            except UPSTREAM_ERRORS as exc:
                verdict = False
                return connection_failure(lane.name, exc, "while answering")
            verdict = status < 500
            if status == 200:
                record_whole(lane, klass, summary, start, began, integral0, data)
            ctype = resp.headers.get("Content-Type", "application/json")
            headers["Content-Type"] = ctype
            return web.Response(status=status, body=data, headers=headers)
        except asyncio.CancelledError:
            lane.counters.disconnects += 1
            verdict = None
            raise
        finally:
            self._finish(lane, resp, verdict, work)

    async def _relay(
        self,
        request: web.Request,
        resp: ClientResponse,
        first: bytes,
        headers: dict[str, str],
        lane: LaneRuntime,
        klass: ClassRuntime,
    ) -> tuple[bool | None, web.StreamResponse, StreamResult]:
        out, result = await relay_stream(request, resp, first, headers)
        if result.client_gone:
            lane.counters.disconnects += 1
            self.counters.client_disconnects += 1
            return None, out, result
        if result.upstream_error is not None:
            lane.counters.mid_stream_errors += 1
            self.counters.mid_stream_errors += 1
            klass.errors += 1
            log.warning("mid-stream failure", lane=lane.name, error=result.upstream_error)
            return False, out, result
        return True, out, result

    def _finish(
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
    from qwend.server.router_http import add_routes

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ROUTER_KEY] = Router(config, lanes)
    app.cleanup_ctx.append(_lifecycle)
    add_routes(app)
    return app
