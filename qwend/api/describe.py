"""One-line descriptions of control API messages for people (pure).

qwenctl prints them (``qwenctl events``, ``qwenctl promote --wait``) and qwen-tui shows
them in its event log, so both clients describe what the daemon did in the same words.
"""

from __future__ import annotations

import time

from qwend.api.messages import (
    Event,
    EventKind,
    GateResult,
    LanesResponse,
    LaneStateChange,
    PromotionAccepted,
    PromotionEvent,
    PromotionOutcome,
    PromotionRecord,
)
from qwend.text import milliseconds


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def promotion_line(item: PromotionAccepted | PromotionEvent | PromotionRecord) -> str:
    """A promotion's acceptance, one of its steps or its result (``qwenctl promote --wait``);
    a failed candidate's result is followed by the last lines of its log."""
    if isinstance(item, PromotionAccepted):
        mode = item.mode.value.replace("_", " ")
        return (
            f"promotion {item.id}: {item.role} {item.from_lane or '-'} -> {item.to_lane} ({mode})"
        )
    if isinstance(item, PromotionEvent):
        return f"{_clock(item.at)}  {item.lane:<16} {item.step.value:<13} {item.message}"
    return result_line(item) + quote_log(item.to_lane, item.log_tail)


def result_line(record: PromotionRecord) -> str:
    """The last line: what happened and how long it took."""
    took = record.finished_at - record.started_at
    if record.outcome is PromotionOutcome.PROMOTED:
        return f"promoted: {record.to_lane} now serves {record.role} ({took:.1f}s)"
    if record.outcome is PromotionOutcome.ROLLED_BACK:
        back = record.from_lane or "nothing"
        return (
            f"rolled back: {record.to_lane} failed ({record.reason}); {back} serves {record.role}"
        )
    if record.outcome is PromotionOutcome.REFUSED:
        back = record.from_lane or "nothing"
        return (
            f"gate refused: {record.to_lane} stopped ({record.reason}); {back} serves {record.role}"
        )
    return f"FAILED: {record.reason}; role {record.role} needs attention (qwenctl status)"


def gate_line(gate: GateResult) -> str:
    """A latency gate's measurement and decision on one line (qwenctl status, qwen-tui)."""
    verdict = "accepted" if gate.accepted else "refused"
    return (
        f"gate {gate.scenario}: {gate.candidate} {gate.candidate_wall_s:.3f}s vs"
        f" {gate.incumbent} {gate.incumbent_wall_s:.3f}s, E2E ratio {gate.ratio:.3f}"
        f" [{gate.ratio_low:.3f}, {gate.ratio_high:.3f}] (n={gate.samples},"
        f" max +{gate.max_regression:.0%}): {verdict}"
    )


def quote_log(lane: str, lines: tuple[str, ...]) -> str:
    """``lines`` of a lane's output, indented under a heading (empty when there are none)."""
    if not lines:
        return ""
    return f"\nlast lines of {lane}'s log:\n" + "\n".join("  | " + line for line in lines)


def event_line(event: Event) -> str:
    """One line of ``qwenctl events`` and of qwen-tui's event log."""
    payload = event.payload()
    if isinstance(payload, LaneStateChange):
        why = f" ({payload.reason})" if payload.reason else ""
        return f"{_clock(payload.at)}  lane {payload.lane}: {payload.old} -> {payload.new}{why}"
    if isinstance(payload, PromotionRecord):
        return result_line(payload)  # one line per event: the log quote is in the record
    if isinstance(payload, PromotionAccepted | PromotionEvent):
        return promotion_line(payload)
    if isinstance(payload, LanesResponse):
        busy = [
            f"{lane.name} {lane.stats.in_flight} in flight,"
            f" ttft p50 {milliseconds(lane.stats.ttft_p50_ms)}"
            for lane in payload.lanes
            if lane.stats is not None
        ]
        return f"{_clock(time.time())}  stats: " + ("; ".join(busy) or "no traffic")
    if event.kind is EventKind.HELLO:
        return f"connected to qwend {payload.to_dict().get('version', '')}"
    return f"{event.kind.value}: {payload.to_dict()}"
