"""The lanes' slots: which lanes the router has, which one takes a request, giving slots back.

``LaneSlots`` follows the lane table (a lane keeps its runtime, counters and
learned model across updates; one that now runs another process relearns),
runs the policy over the current lanes, claims a slot on the lane it picked
(or queues for one in ``Admission``) and releases it with the attempt's
verdict for the lane's breaker, offering the freed slot to the queue.
"""

from __future__ import annotations

import time

from qwend.config.model import RouterConfig
from qwend.logs import get_logger
from qwend.router.admission import Admission
from qwend.router.lanes import LaneRuntime
from qwend.routing.breaker import BreakerSettings, CircuitBreaker
from qwend.routing.classify import RequestSummary
from qwend.routing.lanetable import RoutableLane
from qwend.routing.names import ModelCatalog
from qwend.routing.perf import LanePerf
from qwend.routing.policy import Decision, PolicyState, choose

log = get_logger("router")


class LaneSlots:
    """The current lanes' runtimes, the admission queue and the policy's state."""

    def __init__(self, config: RouterConfig) -> None:
        self._config = config
        self._runtimes: dict[str, LaneRuntime] = {}
        """Every lane with a runtime, including removed ones still serving requests."""
        self._lanes: list[LaneRuntime] = []
        """The current lane set's runtimes, in lane-table order."""
        self._admission = Admission(config.queue_size, config.queue_timeout_s)
        self._policy_state = PolicyState()
        self.catalog = ModelCatalog.of(())
        """The public model names of the current lanes (rebuilt on every lane-set change)."""

    # ----- configuration and lane set -----

    @property
    def config(self) -> RouterConfig:
        """The router configuration in force."""
        return self._config

    def configure(self, config: RouterConfig) -> None:
        """Take a reloaded configuration: policy, limits, queue and breaker settings."""
        self._config = config
        self._admission.queue_size = config.queue_size
        self._admission.queue_timeout_s = config.queue_timeout_s
        settings = breaker_settings(config)
        for runtime in self._runtimes.values():
            runtime.limit = config.max_in_flight_per_lane
            runtime.breaker.configure(settings)
        self._admission.wake()

    def wake(self) -> None:
        """A lane became routable again (its breaker closed): offer it to the queue."""
        self._admission.wake()

    def update(self, lanes: tuple[RoutableLane, ...]) -> None:
        """Follow a new lane set (``LaneTable`` listener); waiters are offered the new lanes."""
        current: list[LaneRuntime] = []
        for lane in lanes:
            runtime = self._runtimes.get(lane.name)
            if runtime is None:
                cfg = self._config
                breaker = CircuitBreaker(breaker_settings(cfg))
                runtime = LaneRuntime(
                    lane, cfg.max_in_flight_per_lane, breaker, changed_at=time.monotonic()
                )
                self._runtimes[lane.name] = runtime
            elif _other_config(runtime.lane, lane):
                runtime.perf = LanePerf()  # another process now: relearn it
                runtime.breaker.reset()  # and judge it afresh
                runtime.lane = lane
            else:
                if lane.accepting and not runtime.lane.accepting:
                    # Back from starting or unhealthy (a restart, or the supervisor saw it
                    # recover): what the breaker learned is about the process before.
                    runtime.breaker.reset()
                runtime.lane = lane
            current.append(runtime)
        names = {lane.name for lane in lanes}
        for name in [n for n, r in self._runtimes.items() if n not in names and r.in_flight == 0]:
            del self._runtimes[name]
        self._lanes = current
        self.catalog = ModelCatalog.of(lanes)
        self._admission.wake()

    # ----- reading -----

    def catalog_for(self, role: str | None) -> ModelCatalog:
        """The public names of every active lane, or of ``role``'s lanes only."""
        if role is None:
            return self.catalog
        return ModelCatalog.of((r.lane for r in self._lanes), role)

    def runtimes(self) -> list[LaneRuntime]:
        """The current lanes' runtimes, in lane-table order."""
        return list(self._lanes)

    def runtime(self, name: str) -> LaneRuntime:
        """The live state of lane ``name`` (KeyError when unknown)."""
        return self._runtimes[name]

    def in_flight(self, name: str) -> int:
        """Requests being served by lane ``name`` (0 for an unknown lane)."""
        runtime = self._runtimes.get(name)
        return runtime.in_flight if runtime is not None else 0

    async def wait_drained(self, name: str, timeout: float) -> bool:
        """Wait until lane ``name`` has nothing in flight; False when ``timeout`` passed first."""
        runtime = self._runtimes.get(name)
        return True if runtime is None else await runtime.wait_drained(timeout)

    def total_in_flight(self) -> int:
        """Requests in flight on every lane (removed lanes still serving included)."""
        return sum(r.in_flight for r in self._runtimes.values())

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return self._admission.queued

    @property
    def queue_size(self) -> int:
        """How many requests may wait for a slot."""
        return self._admission.queue_size

    # ----- claiming and releasing -----

    def _pick(self, summary: RequestSummary, exclude: frozenset[str]) -> Decision:
        decision = self._choose(summary, exclude)
        if decision.lane is not None or decision.wait:
            return decision
        # No lane can serve it: rather than refusing, use a lane ejected for its failure
        # rate (it still answers part of its requests; a 503 answers none). Only on this
        # path, so a healthy router never pays for it.
        degraded = [r for r in self._lanes if r.breaker.degraded]
        if not degraded:
            return decision
        for runtime in degraded:
            runtime.last_resort = True
        try:
            fallback = self._choose(summary, exclude)
        finally:
            for runtime in degraded:
                runtime.last_resort = False
        return fallback if fallback.lane is not None or fallback.wait else decision

    def _choose(self, summary: RequestSummary, exclude: frozenset[str]) -> Decision:
        cfg = self._config
        return choose(
            summary,
            self._lanes,
            cfg.text_policy,
            long_text_min_tokens=cfg.long_text_min_tokens,
            state=self._policy_state,
            exclude=exclude,
        )

    def _grant(self, decision: Decision, work: float, prompt: float) -> None:
        """Claim the chosen lane's slot; for a pair both lanes', the prefill lane's work
        counted in prompt tokens (what it has to prefill), the decode lane's in output."""
        runtime = self._runtimes[decision.lane or ""]
        now = time.monotonic()
        if decision.decode is None:
            runtime.occupy(now, work)
            return
        runtime.occupy(now, prompt)
        self._runtimes[decision.decode].occupy(now, work, sent=False)  # after the prefill

    def _ungrant(self, decision: Decision, work: float, prompt: float) -> None:
        now = time.monotonic()
        runtime = self._runtimes.get(decision.lane or "")
        if runtime is not None:
            runtime.release(now, work if decision.decode is None else prompt)
        decode = self._runtimes.get(decision.decode or "")
        if decode is not None:
            decode.unhold()
            decode.release(now, work)
        self._admission.wake()

    def claim(self, summary: RequestSummary, exclude: frozenset[str], work: float) -> Decision:
        """The policy's choice among the lanes not in ``exclude``, its slot claimed at once.

        A Decision without lane means wait (``wait_for_slot``) or refuse. A pair's
        (``decision.decode``) slots are both claimed; each is released on its own.
        """
        decision = self._pick(summary, exclude)
        if decision.lane is not None:
            self._grant(decision, work, float(summary.prompt_tokens))
        return decision

    async def wait_for_slot(
        self, summary: RequestSummary, exclude: frozenset[str], work: float, timeout: float
    ) -> Decision:
        """Queue until a lane's slot is claimed, or no lane is left (a Decision without lane).

        Raises ``QueueFull`` or ``QueueTimeout``.
        """
        prompt = float(summary.prompt_tokens)
        return await self._admission.admit(
            lambda: self._pick(summary, exclude),
            lambda d: self._grant(d, work, prompt),
            lambda d: self._ungrant(d, work, prompt),
            timeout,
        )

    def release(self, lane: LaneRuntime, verdict: bool | None, work: float) -> None:
        """An attempt on ``lane`` ended; ``verdict`` is the breaker's: True well, False failed,
        None no verdict (the client left)."""
        now = time.monotonic()
        if verdict is True:
            lane.progress_at = now
            lane.breaker.on_success(now)
        elif verdict is False:
            lane.counters.failures += 1
            breaker = lane.breaker
            was_closed = breaker.closed
            breaker.on_failure(now)
            if was_closed and not breaker.closed:
                view = breaker.view(now)
                log.warning(
                    "lane ejected",
                    lane=lane.name,
                    reason=str(view.reason),
                    window_requests=view.window[0],
                    window_failures=view.window[1],
                )
        lane.release(now, work)
        self._admission.wake()


def breaker_settings(config: RouterConfig) -> BreakerSettings:
    """The breaker part of the router configuration."""
    return BreakerSettings(
        threshold=config.breaker_failure_threshold,
        cooldown_s=config.breaker_cooldown_s,
        failure_ratio=config.breaker_failure_ratio,
        min_requests=config.breaker_min_requests,
        window_s=config.breaker_window_s,
    )


def _other_config(old: RoutableLane, new: RoutableLane) -> bool:
    """Does ``new`` describe another process or configuration than ``old``?"""
    return (old.base_url, old.variant, old.model) != (new.base_url, new.variant, new.model)
