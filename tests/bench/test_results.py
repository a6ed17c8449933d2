"""Per-case metrics (vllm bench serve's set), goodput, scaling and the saved document."""

from __future__ import annotations

import json

import pytest

from qwend.bench.results import CaseRun, Slo, case_metrics, result_from_dict, scaled
from tests.bench.helpers import record, result


def test_metrics_of_a_streamed_run() -> None:
    records = (
        record(2.0, ttft=0.5, tokens=4, itl=(0.5, 0.5, 0.5), lane="a"),
        record(3.0, ttft=1.0, tokens=5, itl=(0.5, 0.5, 0.5, 0.5), lane="b"),
        record(0.1, ok=False),
    )
    m = case_metrics("load", [CaseRun("load", 0, 4.0, records)], Slo(ttft_s=0.6))
    assert (m.completed, m.failed) == (2, 1)
    assert m.request_throughput == 0.5
    assert m.output_throughput == 9 / 4
    assert m.total_token_throughput == (9 + 48) / 4
    assert m.ttft.mean == 0.75
    assert m.tpot.mean == pytest.approx(0.5)  # (2.0-0.5)/3 and (3.0-1.0)/4
    assert m.itl.median == 0.5
    assert m.e2e.max == 3.0  # the failure is not a latency
    assert m.goodput == 0.25  # only the first met TTFT <= 0.6 s
    assert dict(m.lanes) == {"a": 1, "b": 1}
    assert m.errors == ("HTTP 503: busy",)
    assert case_metrics("load", [CaseRun("load", 0, 4.0, records)]).goodput is None


def test_scaled_multiplies_every_duration_back() -> None:
    run = CaseRun("c", 0, 0.5, (record(0.4, ttft=0.1, itl=(0.1,)),))
    big = scaled(run, 10)
    assert big.wall_s == 5.0
    assert big.records[0].e2e_s == 4.0
    assert big.records[0].ttft_s == 1.0
    assert big.records[0].itl_s == (1.0,)
    assert big.records[0].output_tokens == 8
    assert scaled(run, 1) is run


def test_result_round_trips_through_json_and_knows_its_variants() -> None:
    r = result("x", {"text_8": [[1.0], [1.1]]}, lanes={"a": "v3"}, lane="a")
    back = result_from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    assert back.variants_of("text_8") == frozenset({"v3"})
    assert result("y", {"text_8": [[1.0]]}, lane="a").variants_of("text_8") == frozenset()
    with pytest.raises(ValueError, match="unsupported result format"):
        result_from_dict({"format": 99})
