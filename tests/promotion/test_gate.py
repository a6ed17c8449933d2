"""The latency gate's paths through a promotion, against the fake supervisor.

``qwend.bench.gate.measure`` is replaced by canned measurements (first call: the
incumbent, second: the candidate); the real bench runs in tests/bench/test_gate_e2e.py.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping

import pytest

from qwend.api.messages import GateRequest, PromotionOutcome
from qwend.bench import gate as latency_gate
from qwend.bench.results import CaseRun, RequestRecord
from qwend.errors import PromotionError
from qwend.promotion.promoter import Promoter
from tests.promotion.test_promoter import CALLER, collect, steps
from tests.support.control_fakes import FakeSupervisor, FakeTraffic, demo_config

GATE = GateRequest("concurrency_8", max_regression=0.05, repeat=2)


def runs(e2e: float) -> list[CaseRun]:
    records = tuple(
        RequestRecord(0.0, True, e2e * (1 + i / 100), e2e, output_tokens=32) for i in range(8)
    )
    return [CaseRun("concurrency_8", r, e2e * 1.08, records) for r in range(2)]


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Set the E2E of [incumbent, candidate]; records the URLs measured."""
    e2e: list[float] = []
    calls: list[str] = []

    async def fake(
        request: GateRequest,
        url: str,
        model: str,
        *,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | bool = True,
    ) -> list[CaseRun]:
        assert request == GATE
        assert not headers and tls is True  # local lanes: no key, no TLS
        calls.append(url)
        return runs(e2e[len(calls) - 1])

    monkeypatch.setattr(latency_gate, "measure", fake)
    yield e2e
    assert len(calls) == 2


async def test_in_place_measures_incumbent_first_and_refuses_a_slower_candidate(
    measured: list[float],
) -> None:
    measured += [6.6, 9.5]
    sup = FakeSupervisor(demo_config())
    events, record = await collect(Promoter(sup, FakeTraffic(), None).start(
        "recurrent_v2", CALLER, gate=GATE))  # fmt: skip
    assert record.outcome is PromotionOutcome.REFUSED
    assert record.gate is not None and not record.gate.accepted
    assert record.reason is not None and "exceeds the 5% margin" in record.reason
    assert steps(events)[:2] == [("recurrent_v2", "planned"), ("stable", "benchmarking")]
    assert ("recurrent_v2", "benchmarking") in steps(events)
    # measured before routing: the candidate never became active; the incumbent is back
    assert ("set_active", "recurrent_v2") not in sup.calls
    lane_calls = [call for call in sup.calls if call[0] not in ("hold", "unhold")]
    assert lane_calls[-2:] == [("wait_ready", "stable"), ("set_active", "stable")]
    assert sup.calls[-1] == ("unhold", "stable")
    assert sup.active["stable"] == "stable"


async def test_blue_green_accepts_a_faster_candidate_then_switches(
    measured: list[float],
) -> None:
    measured += [6.2, 5.9]
    sup = FakeSupervisor(demo_config())
    events, record = await collect(Promoter(sup, FakeTraffic(), None).start(
        "stable_green", CALLER, gate=GATE))  # fmt: skip
    assert record.outcome is PromotionOutcome.PROMOTED
    assert record.gate is not None and record.gate.accepted and record.gate.samples == 16
    order = steps(events)
    assert order.index(("stable_green", "ready")) < order.index(("stable", "benchmarking"))
    assert order.index(("stable_green", "benchmarking")) < order.index(("stable_green", "switched"))


async def test_blue_green_refusal_stops_the_candidate(measured: list[float]) -> None:
    measured += [6.2, 9.0]
    sup = FakeSupervisor(demo_config())
    _, record = await collect(Promoter(sup, FakeTraffic(), None).start(
        "stable_green", CALLER, gate=GATE))  # fmt: skip
    assert record.outcome is PromotionOutcome.REFUSED
    assert sup.calls[-1] == ("stop", "stable_green")
    assert sup.active["stable"] == "stable"


async def test_unknown_gate_scenario_is_refused_before_anything_changes() -> None:
    sup = FakeSupervisor(demo_config())
    with pytest.raises(PromotionError, match="latency gate: unknown scenario 'c9'"):
        Promoter(sup, FakeTraffic(), None).start("stable_green", CALLER, gate=GateRequest("c9"))
    with pytest.raises(PromotionError, match="repeat must be within 1-20, got 1000"):
        Promoter(sup, FakeTraffic(), None).start(
            "stable_green", CALLER, gate=GateRequest("text_8", repeat=1000)
        )
    assert sup.calls == []
