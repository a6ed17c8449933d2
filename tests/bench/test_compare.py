"""Comparison verdicts and the latency gate's decision."""

from __future__ import annotations

from qwend.bench.compare import Verdict, compare, compare_case, gate
from qwend.bench.render import render_comparison
from tests.bench.helpers import result

SLOW = [[9.5, 9.4, 9.6, 9.55], [9.45, 9.5, 9.52, 9.58]]
FAST = [[6.6, 6.7, 6.65, 6.62], [6.68, 6.64, 6.66, 6.7]]


def test_faster_slower_and_no_difference() -> None:
    a = result("a", {"concurrency_8": SLOW, "text_8": [[1.0]]})
    b = result("b", {"concurrency_8": FAST, "text_8": [[0.9]], "only_b": [[1.0]]})
    rows = compare(a, b)
    assert [r.case for r in rows] == ["concurrency_8", "text_8"]
    assert rows[0].verdict is Verdict.FASTER
    assert rows[0].wall_ratio < 0.71
    assert rows[1].interval is None  # one request a side: no verdict
    assert rows[1].verdict is Verdict.SAME
    assert compare_case(b, a, "concurrency_8").verdict is Verdict.SLOWER
    noisy = result("n", {"concurrency_8": [[6.0, 13.0, 7.0, 12.5, 9.0]]})
    wide = compare_case(a, noisy, "concurrency_8")
    assert wide.interval is not None and wide.verdict is Verdict.SAME
    four = result("f", {"concurrency_8": [[1.0, 1.1, 1.0, 1.05]]})
    assert compare_case(a, four, "concurrency_8").interval is None  # too few to trust
    table = render_comparison("a", "b", rows)
    assert "B faster" in table
    assert "no difference at this sample size" in table


def test_gate_accepts_only_a_candidate_measurably_within_the_margin() -> None:
    incumbent = result("i", {"c": SLOW})
    faster = gate(compare_case(incumbent, result("f", {"c": FAST}), "c"), 0.05)
    assert faster.accept
    slower = gate(compare_case(result("f", {"c": FAST}), incumbent, "c"), 0.05)
    assert not slower.accept
    assert "exceeds the 5% margin" in slower.reason
    # 3% slower, tightly measured: inside a 5% margin, outside a 1% one
    slightly = result("s", {"c": [[x * 1.03 for x in run] for run in SLOW]})
    assert gate(compare_case(incumbent, slightly, "c"), 0.05).accept
    assert not gate(compare_case(incumbent, slightly, "c"), 0.01).accept
    few = gate(compare_case(result("a", {"c": [[1.0]]}), result("b", {"c": [[0.5]]}), "c"), 0.05)
    assert not few.accept
    assert "too few requests" in few.reason
