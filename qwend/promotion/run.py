"""The steps of one promotion (in place or blue/green) and its automatic rollback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from qwend.api.messages import (
    Caller,
    GateRequest,
    GateResult,
    PromotionEvent,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
    PromotionStep,
)
from qwend.bench import gate as latency_gate
from qwend.bench.results import CaseRun
from qwend.config.model import Config, LaneConfig, ListenAddress
from qwend.logs import get_logger
from qwend.promotion.plan import PromotionPlan
from qwend.routing.lanetable import TrafficGate
from qwend.supervisor.output import FAILURE_LINES, failure_quote
from qwend.supervisor.remote import access
from qwend.supervisor.states import WANTED_UP, LaneState
from qwend.supervisor.supervisor import LaneSnapshot

log = get_logger("promotion")


class SupervisorLike(Protocol):
    """The methods of ``qwend.supervisor.supervisor.Supervisor`` promotions drive."""

    @property
    def config(self) -> Config: ...
    def active_lanes(self) -> dict[str, str]: ...
    def snapshot(self, name: str) -> LaneSnapshot: ...
    async def start_lane(self, name: str) -> None: ...
    async def stop_lane(self, name: str) -> None: ...
    async def drain_lane(self, name: str) -> None: ...
    async def reset_lane(self, name: str) -> None: ...
    async def wait_ready(self, name: str, timeout: float) -> None: ...
    def set_active(self, role: str, name: str) -> None: ...
    def hold_role(self, role: str, held: bool) -> None: ...
    def log_tail(self, name: str, n: int, previous: bool = False) -> list[str]: ...


class MonitorLike(Protocol):
    """``qwend.npu.monitor.NpuMonitor.pre_start``: waits for the lane's NPUs to be released."""

    async def pre_start(self, lane: LaneConfig) -> str | None: ...


def describe(exc: BaseException) -> str:
    """A one-line reason for a failed step."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class PromotionRun:
    """Carries out one ``PromotionPlan``; every step is reported through ``emit``."""

    plan: PromotionPlan
    promotion_id: str
    supervisor: SupervisorLike
    traffic: TrafficGate | None
    monitor: MonitorLike | None
    emit: Callable[[PromotionEvent], None]
    drain_timeout_s: float
    ready_timeout_s: float | None
    caller: Caller | None
    kind: str
    gate: GateRequest | None = None
    gate_result: GateResult | None = None
    """Set once the latency gate has decided."""
    log_tail: tuple[str, ...] = ()
    """The failed candidate's last lines of output, for the record."""

    async def execute(self) -> PromotionRecord:
        """Run the plan; never raises for a lane failure (the record says what happened)."""
        started = time.time()
        plan = self.plan
        mode = plan.mode.value.replace("_", " ")
        self._step(
            plan.candidate,
            PromotionStep.PLANNED,
            f"{mode}: {plan.incumbent or '(none)'} -> {plan.candidate}",
        )
        if plan.mode is PromotionMode.IN_PLACE:
            outcome, reason = await self._in_place()
        else:
            outcome, reason = await self._blue_green()
        self._step(
            plan.candidate,
            PromotionStep.FINISHED,
            outcome.value + (f": {reason}" if reason else ""),
        )
        return PromotionRecord(
            id=self.promotion_id,
            role=plan.role,
            from_lane=plan.incumbent,
            to_lane=plan.candidate,
            mode=plan.mode,
            outcome=outcome,
            started_at=started,
            finished_at=time.time(),
            reason=reason,
            requested_by=self.caller,
            kind=self.kind,
            gate=self.gate_result,
            log_tail=self.log_tail,
        )

    async def _in_place(self) -> tuple[PromotionOutcome, str | None]:
        plan = self.plan
        assert plan.incumbent is not None
        baseline: list[CaseRun] = []
        if self.gate is not None:
            # The candidate will take the incumbent's place: measure the incumbent first.
            if not plan.incumbent_running:
                return PromotionOutcome.REFUSED, f"gate: {plan.incumbent} is not running to compare"
            try:
                baseline = await self._measure(plan.incumbent)
            except Exception as exc:
                return (
                    PromotionOutcome.REFUSED,
                    f"gate: measuring {plan.incumbent}: {describe(exc)}",
                )
        # Requests for the role wait (bounded by the queue timeout) instead of a 503
        # while it has no ready lane; a lane of another role may still take them.
        self.supervisor.hold_role(plan.role, True)
        try:
            return await self._replace_in_place(baseline)
        finally:
            self.supervisor.hold_role(plan.role, False)

    async def _replace_in_place(
        self, baseline: list[CaseRun]
    ) -> tuple[PromotionOutcome, str | None]:
        plan = self.plan
        assert plan.incumbent is not None
        try:
            if plan.incumbent_running:
                await self._drain(plan.incumbent)
                await self._stop(plan.incumbent)
            await self._wait_npus(plan.candidate)
            await self._start_ready(plan.candidate)
        except Exception as exc:
            return await self._restore(describe(exc), restart_incumbent=True)
        refusal = await self._judge(plan.incumbent, baseline)
        if refusal is not None:
            outcome, reason = await self._restore(refusal, restart_incumbent=True)
            return _refused(outcome), reason
        self._switch()
        return PromotionOutcome.PROMOTED, None

    async def _blue_green(self) -> tuple[PromotionOutcome, str | None]:
        plan = self.plan
        try:
            if not plan.candidate_ready:
                await self._start_ready(plan.candidate)
        except Exception as exc:
            return await self._restore(describe(exc), restart_incumbent=False)
        if self.gate is not None:
            refusal = await self._gate_blue_green()
            if refusal is not None:
                self._step(plan.candidate, PromotionStep.ROLLING_BACK, refusal)
                await self._stop_quietly(plan.candidate)
                return PromotionOutcome.REFUSED, refusal
        self._switch()
        if plan.incumbent is not None and plan.incumbent_running:
            try:
                await self._drain(plan.incumbent)
                await self._stop(plan.incumbent)
            except Exception as exc:
                # The switch is done and serving; the old lane is an operator's clean-up.
                return PromotionOutcome.PROMOTED, f"old lane {plan.incumbent}: {describe(exc)}"
        return PromotionOutcome.PROMOTED, None

    async def _gate_blue_green(self) -> str | None:
        """Measure the running incumbent, then the unrouted candidate; the refusal, if any."""
        plan = self.plan
        if plan.incumbent is None or not plan.incumbent_running:
            return f"gate: role {plan.role} has no running lane to compare with"
        try:
            baseline = await self._measure(plan.incumbent)
        except Exception as exc:
            return f"gate: measuring {plan.incumbent}: {describe(exc)}"
        return await self._judge(plan.incumbent, baseline)

    async def _judge(self, incumbent: str, baseline: list[CaseRun]) -> str | None:
        """Measure the candidate (not routed yet) against ``baseline``; the refusal, if any."""
        if self.gate is None:
            return None
        candidate = self.plan.candidate
        try:
            runs = await self._measure(candidate)
        except Exception as exc:
            return f"gate: measuring {candidate}: {describe(exc)}"
        result = latency_gate.decide(self.gate, incumbent, baseline, candidate, runs)
        self.gate_result = result
        verdict = "accepted" if result.accepted else "refused"
        self._step(candidate, PromotionStep.BENCHMARKING, f"gate {verdict}: {result.reason}")
        return None if result.accepted else f"gate refused: {result.reason}"

    async def _measure(self, lane: str) -> list[CaseRun]:
        assert self.gate is not None
        config = self.supervisor.config.lane(lane)
        # A remote lane: its own url, key and TLS settings (LaneError if they are unusable).
        options = access(config)
        url = config.base_url if config.is_remote else ListenAddress(config.host, config.port).url
        self._step(lane, PromotionStep.BENCHMARKING, f"{self.gate.scenario} x{self.gate.repeat}")
        return await latency_gate.measure(
            self.gate, url, config.backend_model, headers=options.headers, tls=options.ssl
        )

    async def _stop_quietly(self, lane: str) -> None:
        try:
            await self.supervisor.stop_lane(lane)
        except Exception as exc:
            log.error("stopping refused candidate", lane=lane, error=describe(exc))

    async def _restore(
        self, reason: str, *, restart_incumbent: bool
    ) -> tuple[PromotionOutcome, str | None]:
        plan = self.plan
        self.log_tail = self._quote(plan.candidate)
        self._step(plan.candidate, PromotionStep.ROLLING_BACK, f"candidate failed: {reason}")
        log.warning(
            "promotion rolling back", id=self.promotion_id, lane=plan.candidate, reason=reason
        )
        try:
            await self.supervisor.stop_lane(plan.candidate)
        except Exception as exc:
            log.error("stopping failed candidate", lane=plan.candidate, error=describe(exc))
        if plan.incumbent is None:
            return PromotionOutcome.ROLLED_BACK, f"{reason}; role {plan.role} has no previous lane"
        try:
            if restart_incumbent:
                await self._start_ready(plan.incumbent)
            self.supervisor.set_active(plan.role, plan.incumbent)
        except Exception as exc:
            return (
                PromotionOutcome.FAILED,
                f"{reason}; restoring {plan.incumbent} failed too: {describe(exc)}",
            )
        self._step(
            plan.incumbent, PromotionStep.SWITCHED, f"{plan.incumbent} serves {plan.role} again"
        )
        return PromotionOutcome.ROLLED_BACK, reason

    def _quote(self, lane: str) -> tuple[str, ...]:
        """The candidate's last lines of output: what it said when its start failed, or
        (still running, it missed the readiness limit) what it says now."""
        try:
            failed = self.supervisor.snapshot(lane).failure_log
            return failed or failure_quote(self.supervisor.log_tail(lane, FAILURE_LINES))
        except Exception as exc:  # a quote is a courtesy: never let it stop the rollback
            log.warning("cannot read the candidate's log", lane=lane, error=describe(exc))
            return ()

    def _switch(self) -> None:
        plan = self.plan
        self.supervisor.set_active(plan.role, plan.candidate)
        self._step(
            plan.candidate, PromotionStep.SWITCHED, f"{plan.candidate} now serves {plan.role}"
        )

    async def _drain(self, lane: str) -> None:
        self._step(lane, PromotionStep.DRAINING, "no new requests; waiting for in-flight ones")
        await self.supervisor.drain_lane(lane)
        if self.traffic is None:
            self._step(lane, PromotionStep.DRAINED, "no router attached")
            return
        if await self.traffic.wait_drained(lane, self.drain_timeout_s):
            self._step(lane, PromotionStep.DRAINED, "no requests in flight")
        else:
            left = self.traffic.in_flight(lane)
            self._step(
                lane,
                PromotionStep.DRAINED,
                f"drain timed out after {self.drain_timeout_s:g}s with {left} in flight;"
                " stopping anyway",
            )

    async def _stop(self, lane: str) -> None:
        self._step(lane, PromotionStep.STOPPING, "stopping the process group")
        await self.supervisor.stop_lane(lane)
        self._step(lane, PromotionStep.STOPPED, "stopped")

    async def _wait_npus(self, lane: str) -> None:
        config = self.supervisor.config.lane(lane)
        if self.monitor is None or config.is_remote:  # a remote lane's NPUs are its host's
            return
        npus = ",".join(map(str, config.npus))
        self._step(lane, PromotionStep.WAITING_NPUS, f"checking NPUs {npus} are released")
        warning = await self.monitor.pre_start(config)
        if warning:
            self._step(lane, PromotionStep.WAITING_NPUS, warning)

    async def _start_ready(self, lane: str) -> None:
        state = self.supervisor.snapshot(lane).state
        config = self.supervisor.config.lane(lane)
        timeout = self.ready_timeout_s or config.health.startup_timeout_s
        self._step(lane, PromotionStep.STARTING, f"state {state.value}; waiting up to {timeout:g}s")
        if state is LaneState.FAILED:
            await self.supervisor.reset_lane(lane)
        elif state not in WANTED_UP or state is LaneState.DRAINING:
            await self.supervisor.start_lane(lane)
        await self.supervisor.wait_ready(lane, timeout)
        self._step(lane, PromotionStep.READY, "ready")

    def _step(self, lane: str, step: PromotionStep, message: str) -> None:
        self.emit(
            PromotionEvent(
                id=self.promotion_id,
                role=self.plan.role,
                lane=lane,
                step=step,
                message=message,
                at=time.time(),
            )
        )


def _refused(outcome: PromotionOutcome) -> PromotionOutcome:
    """A gate refusal that restored the incumbent is "refused", not a failed candidate."""
    return PromotionOutcome.REFUSED if outcome is PromotionOutcome.ROLLED_BACK else outcome
