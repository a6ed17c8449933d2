"""Zero-downtime promotion of a candidate lane, with automatic rollback.

``Promoter.start(lane, caller)`` checks the request (valid lane, no other
promotion of that role running), then runs the promotion as a background task
so it completes even when the client that asked goes away. Progress events
and the final ``PromotionRecord`` go to every subscriber (the requesting
client's stream, the SSE event stream) and the outcome is persisted through
the ``StateStore``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Mapping

from qwend.api.messages import (
    Caller,
    GateRequest,
    PromotionAccepted,
    PromotionEvent,
    PromotionRecord,
)
from qwend.bench import gate as latency_gate
from qwend.bench.scenarios import ScenarioError
from qwend.broadcast import Broadcast, Subscription
from qwend.errors import PromotionConflict, PromotionError
from qwend.logs import get_logger
from qwend.promotion.plan import PromotionPlan, plan_promotion, rollback_target
from qwend.promotion.run import MonitorLike, PromotionRun, SupervisorLike
from qwend.promotion.state import StateError, StateStore
from qwend.routing.lanetable import TrafficGate

log = get_logger("promotion")

Progress = PromotionEvent | PromotionRecord
PROGRESS_BUFFER = 1000
"""Progress items a subscriber may fall behind by (a promotion has about a dozen)."""


class Promotion:
    """One running (or finished) promotion; replays its progress to late subscribers."""

    def __init__(self, accepted: PromotionAccepted) -> None:
        self.accepted = accepted
        self._log: list[Progress] = []
        self._progress: Broadcast[Progress] = Broadcast(PROGRESS_BUFFER)
        self._done = asyncio.Event()
        self.task: asyncio.Task[PromotionRecord] | None = None

    @property
    def id(self) -> str:
        return self.accepted.id

    def publish(self, item: Progress) -> None:
        self._log.append(item)
        self._progress.publish(item)
        if isinstance(item, PromotionRecord):
            self._progress.close()
            self._done.set()

    def progress(self) -> Subscription[Progress]:
        """Every event so far and to come, ending with the ``PromotionRecord``."""
        return self._progress.subscribe(replay=self._log)

    async def result(self) -> PromotionRecord:
        """Wait for the end and return the record."""
        await self._done.wait()
        last = self._log[-1]
        assert isinstance(last, PromotionRecord)
        return last


class Promoter:
    """Runs promotions and manual rollbacks; one at a time per role."""

    def __init__(
        self,
        supervisor: SupervisorLike,
        traffic: TrafficGate | None,
        store: StateStore | None,
        monitor: MonitorLike | None = None,
        *,
        drain_timeout_s: float | None = None,
        history_limit: int = 50,
    ) -> None:
        self.supervisor = supervisor
        self.traffic = traffic
        self.store = store
        self.monitor = monitor
        self.drain_timeout_s = drain_timeout_s
        self._running: dict[str, Promotion] = {}
        self._history: list[PromotionRecord] = list(store.state.history) if store else []
        self._history_limit = history_limit
        self.finished: Counter[tuple[str, str, str]] = Counter()
        """Promotions finished since start by (role, kind, outcome): ``/metrics`` counts."""
        self._progress: Broadcast[Progress] = Broadcast(PROGRESS_BUFFER)
        self._ids = itertools.count(1)
        self._closed = False

    def running(self) -> tuple[PromotionAccepted, ...]:
        """Promotions in progress."""
        return tuple(p.accepted for p in self._running.values())

    def get(self, promotion_id: str) -> Promotion | None:
        """A running promotion by id."""
        return next((p for p in self._running.values() if p.id == promotion_id), None)

    def history(self) -> tuple[PromotionRecord, ...]:
        """Finished promotions, oldest first (persisted ones included)."""
        return tuple(self._history[-self._history_limit :])

    def subscribe(self) -> Subscription[Progress]:
        """The progress of every promotion from now on (for the event stream)."""
        return self._progress.subscribe()

    def start(
        self,
        lane: str,
        caller: Caller | None,
        *,
        ready_timeout_s: float | None = None,
        gate: GateRequest | None = None,
    ) -> Promotion:
        """Validate and begin promoting ``lane``; raises before anything changes.

        UnknownLane, PromotionError (nothing to do, or a gate naming no known scenario)
        or PromotionConflict.
        """
        plan = self._plan(lane)
        if gate is not None:
            try:
                latency_gate.check(gate)
            except ScenarioError as exc:
                raise PromotionError(f"latency gate: {exc}") from None
        return self._begin(plan, caller, ready_timeout_s, kind="promote", gate=gate)

    def rollback(
        self, role: str, caller: Caller | None, *, ready_timeout_s: float | None = None
    ) -> Promotion:
        """Begin reverting the last promotion of ``role`` (back to its previous lane)."""
        self._check_free(role)
        record = rollback_target(tuple(self._history), role, self.supervisor.active_lanes())
        assert record.from_lane is not None
        plan = self._plan(record.from_lane)
        return self._begin(plan, caller, ready_timeout_s, kind="rollback")

    def _plan(self, candidate: str) -> PromotionPlan:
        config = self.supervisor.config
        states = {lc.name: self.supervisor.snapshot(lc.name).state for lc in config.lanes}
        return plan_promotion(config, self.supervisor.active_lanes(), candidate, states)

    def _check_free(self, role: str) -> None:
        busy = self._running.get(role)
        if busy is not None:
            raise PromotionConflict(
                f"a promotion of role {role!r} is already running ({busy.id}:"
                f" {busy.accepted.from_lane} -> {busy.accepted.to_lane}); wait for it to finish"
                " (qwenctl events) and try again"
            )

    def _begin(
        self,
        plan: PromotionPlan,
        caller: Caller | None,
        timeout: float | None,
        kind: str,
        gate: GateRequest | None = None,
    ) -> Promotion:
        if self._closed:
            raise PromotionError("qwend is shutting down; promote again once it is back")
        self._check_free(plan.role)
        pid = f"{plan.role}-{int(time.time())}-{next(self._ids)}"
        accepted = PromotionAccepted(pid, plan.role, plan.incumbent, plan.candidate, plan.mode)
        promotion = Promotion(accepted)
        self._running[plan.role] = promotion
        run = PromotionRun(
            plan=plan,
            promotion_id=pid,
            supervisor=self.supervisor,
            traffic=self.traffic,
            monitor=self.monitor,
            emit=lambda item: self._publish(promotion, item),
            drain_timeout_s=self._drain_timeout(),
            ready_timeout_s=timeout,
            caller=caller,
            kind=kind,
            gate=gate,
        )
        log.info(
            "promotion started",
            id=pid,
            role=plan.role,
            from_lane=plan.incumbent,
            to_lane=plan.candidate,
            mode=str(plan.mode),
            kind=kind,
            uid=caller.uid if caller else None,
            pid=caller.pid if caller else None,
        )
        promotion.task = asyncio.create_task(self._run(promotion, run), name=f"promotion-{pid}")
        return promotion

    def _drain_timeout(self) -> float:
        if self.drain_timeout_s is not None:
            return self.drain_timeout_s
        return self.supervisor.config.daemon.drain_timeout_s

    def _publish(self, promotion: Promotion, item: Progress) -> None:
        promotion.publish(item)
        self._progress.publish(item)

    async def _run(self, promotion: Promotion, run: PromotionRun) -> PromotionRecord:
        try:
            record = await run.execute()
            self._history.append(record)
            self.finished[(record.role, record.kind, str(record.outcome))] += 1
            await self._persist(record)
            log.info(
                "promotion finished",
                id=record.id,
                role=record.role,
                outcome=str(record.outcome),
                reason=record.reason,
            )
            self._publish(promotion, record)
            return record
        finally:
            self._running.pop(promotion.accepted.role, None)

    async def _persist(self, record: PromotionRecord) -> None:
        if self.store is None:
            return
        active: Mapping[str, str] = self.supervisor.active_lanes()
        try:
            await asyncio.to_thread(self.store.record, active, record)
        except StateError as exc:
            # The switch happened; only its memory across restarts is at risk.
            log.error("promotion not persisted", id=record.id, error=str(exc))

    async def aclose(self) -> None:
        """At shutdown: refuse new promotions and cancel running ones.

        Nothing of a cancelled promotion is persisted, so the next daemon start
        brings back the lanes active before it (the supervisor stops them all).
        """
        self._closed = True
        tasks = [p.task for p in self._running.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
