"""Side-by-side comparison of two results, with a bootstrap interval and a verdict (pure).

For each case both results ran, the ratio is B over A of the mean per-request E2E
latency (below 1: B is faster); its 95% interval comes from a seeded bootstrap
over the requests of all runs. The verdict only claims a difference the interval
supports: "faster" when the whole interval is below 1, "slower" when it is above,
else "no difference at this sample size".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from qwend.bench.results import BenchResult
from qwend.bench.stats import RatioInterval, bootstrap_ratio, summarize

MIN_SAMPLES = 5
"""Fewer requests than this on a side: no verdict.

The bootstrap treats requests as independent samples, but the requests of one burst
share a batch: with a handful of them the interval is far too narrow to trust. Run
more repeats (``--repeat``) for a verdict on the small cases."""


class Verdict(StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    SAME = "no difference at this sample size"


@dataclass(frozen=True)
class CaseComparison:
    """One case of A and B side by side."""

    case: str
    wall_a: float
    """Median wall of A's runs (seconds)."""
    wall_b: float
    e2e_a: float
    """Mean per-request E2E latency of A (seconds)."""
    e2e_b: float
    samples_a: int
    samples_b: int
    interval: RatioInterval | None
    """None below ``MIN_SAMPLES`` on either side."""
    verdict: Verdict
    failed_a: int = 0
    failed_b: int = 0

    @property
    def wall_ratio(self) -> float:
        return self.wall_b / self.wall_a if self.wall_a > 0 else float("nan")


def verdict_for(interval: RatioInterval | None) -> Verdict:
    """B against A from the interval of mean(B)/mean(A)."""
    if interval is None:
        return Verdict.SAME
    if interval.high < 1:
        return Verdict.FASTER
    if interval.low > 1:
        return Verdict.SLOWER
    return Verdict.SAME


def compare_case(a: BenchResult, b: BenchResult, case: str, seed: int = 0) -> CaseComparison:
    """Compare ``case`` as measured in ``a`` and ``b``."""
    runs_a, runs_b = a.runs_of(case), b.runs_of(case)
    e2e_a = [r.e2e_s for run in runs_a for r in run.records if r.ok]
    e2e_b = [r.e2e_s for run in runs_b for r in run.records if r.ok]
    enough = len(e2e_a) >= MIN_SAMPLES and len(e2e_b) >= MIN_SAMPLES
    interval = bootstrap_ratio(e2e_a, e2e_b, seed=seed) if enough else None
    return CaseComparison(
        case=case,
        wall_a=summarize([run.wall_s for run in runs_a]).median,
        wall_b=summarize([run.wall_s for run in runs_b]).median,
        e2e_a=summarize(e2e_a).mean,
        e2e_b=summarize(e2e_b).mean,
        samples_a=len(e2e_a),
        samples_b=len(e2e_b),
        interval=interval,
        verdict=verdict_for(interval),
        failed_a=sum(1 for run in runs_a for r in run.records if not r.ok),
        failed_b=sum(1 for run in runs_b for r in run.records if not r.ok),
    )


def compare(a: BenchResult, b: BenchResult, seed: int = 0) -> list[CaseComparison]:
    """Every case both results measured, in A's order."""
    common = [case for case in a.cases if case in b.cases]
    return [compare_case(a, b, case, seed) for case in common]


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate (B) may replace the incumbent (A) on one case."""

    accept: bool
    reason: str
    comparison: CaseComparison
    max_regression: float


def gate(comparison: CaseComparison, max_regression: float) -> GateDecision:
    """Accept only when the candidate is measurably not worse than the margin allows.

    The whole interval's upper end must be at most ``1 + max_regression``: a candidate
    whose slowdown cannot be ruled out at this sample size is refused, and so is any
    candidate that failed a request.
    """
    limit = 1 + max_regression
    c = comparison
    if c.failed_b:
        return GateDecision(False, f"candidate failed {c.failed_b} request(s)", c, max_regression)
    if c.interval is None:
        reason = f"too few requests to decide ({c.samples_a} vs {c.samples_b})"
        return GateDecision(False, reason, c, max_regression)
    span = f"E2E ratio {c.interval.ratio:.3f} [{c.interval.low:.3f}, {c.interval.high:.3f}]"
    if c.interval.high <= limit:
        return GateDecision(
            True, f"{span} within the {max_regression:.0%} margin", c, max_regression
        )
    return GateDecision(False, f"{span} exceeds the {max_regression:.0%} margin", c, max_regression)
