"""The latency gate on the control API: request and result messages, and their lines."""

from __future__ import annotations

from qwend.api.describe import gate_line, result_line
from qwend.api.messages import (
    GateRequest,
    GateResult,
    PromoteRequest,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
)

GATE = GateResult(
    scenario="concurrency_8", incumbent="throughput", candidate="slow", accepted=False,
    reason="E2E ratio 1.512 [1.498, 1.526] exceeds the 5% margin", max_regression=0.05,
    incumbent_wall_s=6.2, candidate_wall_s=9.5, ratio=1.512, ratio_low=1.498, ratio_high=1.526,
    samples=24,
)  # fmt: skip


def test_gate_messages_round_trip() -> None:
    request = PromoteRequest("slow", True, None, GateRequest("concurrency_8", 0.05, 3))
    assert PromoteRequest.from_dict(request.to_dict()) == request
    assert PromoteRequest.from_dict({"lane": "x"}).gate is None  # older clients
    record = PromotionRecord(
        "t-1", "throughput", "throughput", "slow", PromotionMode.BLUE_GREEN,
        PromotionOutcome.REFUSED, 1.0, 2.0, "gate refused: ...", gate=GATE,
    )  # fmt: skip
    assert PromotionRecord.from_dict(record.to_dict()) == record
    assert result_line(record) == (
        "gate refused: slow stopped (gate refused: ...); throughput serves throughput"
    )


def test_gate_line() -> None:
    assert gate_line(GATE) == (
        "gate concurrency_8: slow 9.500s vs throughput 6.200s, E2E ratio 1.512"
        " [1.498, 1.526] (n=24, max +5%): refused"
    )
