"""The router's live state and its statistics snapshot.

``Router`` holds what lives as long as the router: the lanes' slots and the
admission queue (``LaneSlots``), the counters and per-class statistics, the
pooled upstream session and the disconnect watchdog. The request path sees
them through one ``Forwarding`` record; the daemon, the control API and the
promotion code see the ``Router``: its configuration, ``stats_snapshot`` and
``TrafficGate`` (``in_flight``, ``wait_drained``).

Per request: a handler validates and classifies the body
(``qwend.router.handlers``), then an ``Exchange`` admits it (a lane slot or the
FIFO queue), forwards, retries on another lane while nothing reached the
client, relays and records. ``qwend.router.app.make_router_app`` builds the
aiohttp app.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from qwend.config.model import RouterConfig
from qwend.router.accesslog import AccessLogSlot
from qwend.router.lanes import LaneRuntime
from qwend.router.prober import Prober
from qwend.router.recording import ClassRuntime, RouterCounters
from qwend.router.slots import LaneSlots
from qwend.router.upstream import Upstream
from qwend.router.watchdog import Watchdog
from qwend.routing.classify import RequestClass
from qwend.routing.histograms import TrafficHistograms
from qwend.routing.lanetable import LaneTable, RoutableLane
from qwend.routing.outcomes import RetryBudget
from qwend.routing.snapshot import ClassStats, LaneStats, RouterSnapshot
from qwend.routing.windows import WINDOW_S


@dataclass(frozen=True, eq=False)
class Forwarding:
    """What forwarding a request works with: an ``Exchange``'s whole view of the router."""

    slots: LaneSlots
    """The lanes: choose one, claim its slot (or queue for one), release it."""
    counters: RouterCounters
    """Router-wide counters."""
    classes: Mapping[RequestClass, ClassRuntime]
    """Statistics per traffic class."""
    upstream: Upstream
    """The pooled session to the lanes."""
    watchdog: Watchdog
    """Cancels handlers whose client left or whose deadline passed."""
    retry_budget: RetryBudget
    """Router-wide: how many retries may still go out in the current window."""
    traffic: TrafficHistograms = field(default_factory=TrafficHistograms)
    """Latency histograms and token counters per lane and class (``/metrics``)."""
    access: AccessLogSlot = field(default_factory=AccessLogSlot)
    """The access log in force (router port and public endpoints)."""

    @property
    def config(self) -> RouterConfig:
        """The router configuration in force (it changes on reload)."""
        return self.slots.config


class Router:
    """Live routing state; implements ``TrafficGate`` (``in_flight``, ``wait_drained``)."""

    def __init__(self, config: RouterConfig, lanes: LaneTable) -> None:
        slots = LaneSlots(config)
        traffic = TrafficHistograms()
        self._forwarding = Forwarding(
            slots=slots,
            counters=RouterCounters(),
            classes={cls: ClassRuntime(name=str(cls), traffic=traffic) for cls in RequestClass},
            upstream=Upstream(config),
            watchdog=Watchdog(),
            retry_budget=RetryBudget(config.retry_budget_ratio),
            traffic=traffic,
        )
        self.prober = Prober(slots, self._forwarding.upstream, self._forwarding.watchdog)
        """Ejects hung lanes and probes ejected ones (runs while the app runs)."""
        lanes.subscribe(slots.update)
        lanes.subscribe(self._forget_removed)
        slots.update(lanes.snapshot())

    def _forget_removed(self, lanes: tuple[RoutableLane, ...]) -> None:
        """Stop exporting the traffic of lanes a reload removed (or renamed the role or
        variant of): a dashboard would otherwise show them forever."""
        self._forwarding.traffic.forget({(lane.name, lane.role, lane.variant) for lane in lanes})

    @property
    def config(self) -> RouterConfig:
        """The router configuration in force."""
        return self._forwarding.config

    @property
    def forwarding(self) -> Forwarding:
        """What the request path (router and public handlers) works with."""
        return self._forwarding

    def apply_config(self, config: RouterConfig) -> None:
        """Take a reloaded configuration (policy, limits, timeouts, breaker settings).

        The listen address and pooled-connection settings apply on the next start.
        """
        self._forwarding.upstream.configure(config)
        self._forwarding.slots.configure(config)
        self._forwarding.retry_budget.ratio = config.retry_budget_ratio

    # ----- TrafficGate -----

    def in_flight(self, lane: str) -> int:
        """Requests being served by ``lane`` (0 for an unknown lane)."""
        return self._forwarding.slots.in_flight(lane)

    async def wait_drained(self, lane: str, timeout: float) -> bool:
        """Wait until ``lane`` has nothing in flight; False when ``timeout`` passed first."""
        return await self._forwarding.slots.wait_drained(lane, timeout)

    # ----- statistics -----

    def stats_snapshot(self) -> RouterSnapshot:
        """A frozen picture of traffic, latency, queue and breakers, as of now."""
        now = time.monotonic()
        fwd = self._forwarding
        slots, counters, cfg = fwd.slots, fwd.counters, fwd.config
        classes = tuple(
            ClassStats(str(cls), c.series.stats(now), c.requests, c.errors)
            for cls, c in fwd.classes.items()
        )
        return RouterSnapshot(
            policy=str(cfg.text_policy),
            long_text_min_tokens=cfg.long_text_min_tokens,
            taken_at=time.time(),
            window_s=WINDOW_S,
            lanes=tuple(_lane_stats(runtime, now) for runtime in slots.runtimes()),
            classes=classes,
            in_flight=slots.total_in_flight(),
            queued=slots.queued,
            queue_limit=cfg.queue_size,
            requests=counters.requests,
            retries=counters.retries,
            spills=counters.spills,
            rejected_queue_full=counters.rejected_queue_full,
            rejected_no_lane=counters.rejected_no_lane,
            mid_stream_errors=counters.mid_stream_errors,
            client_disconnects=counters.client_disconnects,
            bad_requests=counters.bad_requests,
            retries_refused=counters.retries_refused,
            pd_requests=counters.pd_requests,
            pd_transfer_failures=counters.pd_transfer_failures,
        )


def _lane_stats(runtime: LaneRuntime, now: float) -> LaneStats:
    view = runtime.breaker.view(now)
    return LaneStats(
        name=runtime.name,
        role=runtime.role,
        variant=runtime.lane.variant,
        accepting=runtime.eligible,
        in_flight=runtime.in_flight,
        limit=runtime.limit,
        outstanding_work=runtime.outstanding_work,
        breaker=str(view.state),
        breaker_failures=view.consecutive_failures,
        latency=runtime.series.stats(now),
        requests=runtime.counters.requests,
        failures=runtime.counters.failures,
        retried_away=runtime.counters.retried_away,
        spills=runtime.counters.spills,
        mid_stream_errors=runtime.counters.mid_stream_errors,
        disconnects=runtime.counters.disconnects,
        perf=runtime.perf.view(runtime.limit),
    )


ROUTER_KEY: web.AppKey[Router] = web.AppKey("qwend_router", Router)
"""Where ``make_router_app`` keeps the ``Router`` (stats, reload, traffic gate)."""
FORWARDING_KEY: web.AppKey[Forwarding] = web.AppKey("qwend_router_forwarding", Forwarding)
"""Where ``make_router_app`` keeps the router's ``Forwarding`` (the request path)."""
