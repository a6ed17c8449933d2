"""One-line descriptions of control messages, shared by qwenctl and qwen-tui."""

from __future__ import annotations

import time
from dataclasses import replace

from qwend.api.describe import event_line, promotion_line, result_line
from qwend.api.messages import (
    DaemonInfo,
    Event,
    LaneInfo,
    LanesResponse,
    LaneStateChange,
    LaneStats,
    PromotionAccepted,
    PromotionEvent,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
    PromotionStep,
)

AT = time.mktime((2026, 11, 30, 14, 3, 7, 0, 0, -1))
"""14:03:07 local time, whatever the machine's zone."""


def record(outcome: PromotionOutcome, reason: str | None = None) -> PromotionRecord:
    return PromotionRecord(
        id="p1",
        role="stable",
        from_lane="stable",
        to_lane="recurrent_v2",
        mode=PromotionMode.IN_PLACE,
        outcome=outcome,
        started_at=100.0,
        finished_at=112.34,
        reason=reason,
    )


def lane(name: str, stats: LaneStats | None) -> LaneInfo:
    return LaneInfo(
        name=name, role=name, variant="v3", state="ready", active=True, standby=False, stats=stats
    )


def test_result_lines_say_what_happened() -> None:
    assert result_line(record(PromotionOutcome.PROMOTED)) == (
        "promoted: recurrent_v2 now serves stable (12.3s)"
    )
    assert result_line(record(PromotionOutcome.ROLLED_BACK, "not ready in 30s")) == (
        "rolled back: recurrent_v2 failed (not ready in 30s); stable serves stable"
    )
    assert result_line(record(PromotionOutcome.FAILED, "restore failed")) == (
        "FAILED: restore failed; role stable needs attention (qwenctl status)"
    )


def test_a_failed_candidates_log_is_quoted_under_the_result() -> None:
    failed = replace(
        record(PromotionOutcome.ROLLED_BACK, "exit 2 during start"),
        log_tail=("usage: transformers serve [-h] ...", "error: unrecognized arguments: --x"),
    )
    assert result_line(failed) == (
        "rolled back: recurrent_v2 failed (exit 2 during start); stable serves stable"
    )
    assert promotion_line(failed).splitlines() == [
        "rolled back: recurrent_v2 failed (exit 2 during start); stable serves stable",
        "last lines of recurrent_v2's log:",
        "  | usage: transformers serve [-h] ...",
        "  | error: unrecognized arguments: --x",
    ]


def test_promotion_lines() -> None:
    accepted = PromotionAccepted("p1", "stable", None, "recurrent_v2", PromotionMode.BLUE_GREEN)
    assert promotion_line(accepted) == "promotion p1: stable - -> recurrent_v2 (blue green)"
    step = PromotionEvent("p1", "stable", "recurrent_v2", PromotionStep.STARTING, "pid 42", AT)
    assert promotion_line(step) == "14:03:07  recurrent_v2     starting      pid 42"
    done = record(PromotionOutcome.PROMOTED)
    assert promotion_line(done) == result_line(done)


def test_event_lines() -> None:
    change = LaneStateChange("stable", "starting", "ready", None, AT)
    assert event_line(Event.of(change)) == "14:03:07  lane stable: starting -> ready"
    crashed = LaneStateChange("mm", "ready", "backoff", "exit 3", AT)
    assert event_line(Event.of(crashed)) == "14:03:07  lane mm: ready -> backoff (exit 3)"
    hello = DaemonInfo(version="0.1.0", pid=1, started_at=0.0, uptime_s=1.0, config_path="x")
    assert event_line(Event.of(hello)) == "connected to qwend 0.1.0"
    busy = lane("mm", LaneStats(in_flight=2, ttft_p50_ms=412.4))
    idle = lane("stable", None)
    line = event_line(Event.of(LanesResponse(lanes=(busy, idle))))
    assert line.endswith("  stats: mm 2 in flight, ttft p50 412ms")
    assert event_line(Event.of(LanesResponse(lanes=(idle,)))).endswith("  stats: no traffic")
