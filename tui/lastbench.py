"""The newest saved ``qwenctl bench`` result about one lane, summarised for its detail view.

``qwenctl bench`` saves every run in the operator's state directory
(``qwend.bench.store``: ``$QWEND_BENCH_DIR`` or ``$XDG_STATE_HOME/qwend/bench``).
qwen-tui runs as the same operator on the same host, so it reads them there: the
saved documents and their parser belong to ``qwend.bench``, which the TUI may use
(the import-linter contracts keep it away from the daemon side only). A result is
about a lane when it targeted it (``lane:NAME``) or when requests sent through the
router or a role were answered by it; then only that lane's requests count.
Reading the directory is file I/O: the app calls ``last_bench`` from a thread worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qwend.bench.results import BenchResult, CaseRun, case_metrics
from qwend.bench.store import listing


@dataclass(frozen=True)
class BenchCase:
    """One case of the bench as this lane served it."""

    case: str
    completed: int
    failed: int
    ttft_p50_s: float
    e2e_p50_s: float
    e2e_p99_s: float
    output_tok_s: float
    goodput: float | None


@dataclass(frozen=True)
class LaneBench:
    """The lane's last bench: where it came from and its figures per case."""

    id: str
    target: str
    started_at: float
    variant: str
    """The lane's variant when it was measured ("" when the bench did not record it)."""
    attributed: bool
    """The bench targeted the router or a role: these are the requests this lane answered."""
    cases: tuple[BenchCase, ...]


def about_lane(result: BenchResult, lane: str) -> bool:
    """``result`` targeted ``lane`` or has requests it answered."""
    if result.meta.target == f"lane:{lane}":
        return True
    return any(r.ok and r.lane == lane for run in result.runs for r in run.records)


def summarise(result: BenchResult, lane: str) -> LaneBench:
    """``result``'s figures for ``lane`` (only its own requests when the bench was routed)."""
    direct = result.meta.target == f"lane:{lane}"
    cases = []
    for case in result.cases:
        runs = result.runs_of(case)
        if not direct:
            runs = [_only(run, lane) for run in runs]
        if not any(run.records for run in runs):
            continue
        m = case_metrics(case, runs, result.slo)
        cases.append(
            BenchCase(
                case=case,
                completed=m.completed,
                failed=m.failed,
                ttft_p50_s=m.ttft.median,
                e2e_p50_s=m.e2e.median,
                e2e_p99_s=m.e2e.p99,
                output_tok_s=m.output_throughput,
                goodput=m.goodput,
            )
        )
    return LaneBench(
        id=result.id,
        target=result.meta.target,
        started_at=result.meta.started_at,
        variant=result.meta.lanes.get(lane, ""),
        attributed=not direct,
        cases=tuple(cases),
    )


def _only(run: CaseRun, lane: str) -> CaseRun:
    """``run`` with the requests ``lane`` answered only (its wall stays the run's)."""
    mine = tuple(r for r in run.records if r.lane == lane)
    return CaseRun(run.case, run.repeat, run.wall_s, mine)


def last_bench(directory: Path, lane: str) -> LaneBench | None:
    """The newest readable saved result about ``lane`` in ``directory`` (None when none)."""
    found = [r for r in listing(directory) if about_lane(r, lane)]
    return summarise(found[-1], lane) if found else None


def _s(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}s"


def bench_lines(bench: LaneBench | None, lane: str, variant_now: str) -> list[str]:
    """The detail view's bench section, one line per case."""
    if bench is None:
        return [f"no bench yet (qwenctl bench lane:{lane})"]
    when = datetime.fromtimestamp(bench.started_at).astimezone()
    how = f"requests it answered via {bench.target}" if bench.attributed else bench.target
    lines = [f"bench {bench.id}, {when:%Y-%m-%d %H:%M}, {how}"]
    if bench.variant and bench.variant != variant_now:
        lines.append(f"  measured on variant {bench.variant}; the lane runs {variant_now} now")
    for c in bench.cases:
        good = "" if c.goodput is None else f"  goodput {c.goodput:.2f}/s"
        lines.append(
            f"  {c.case:<16} ok {c.completed:<4} fail {c.failed:<3} TTFT p50 {_s(c.ttft_p50_s)}"
            f"  E2E p50 {_s(c.e2e_p50_s)} p99 {_s(c.e2e_p99_s)}  {c.output_tok_s:.1f} tok/s{good}"
        )
    if not bench.cases:
        lines.append("  (no request of this lane in it)")
    return lines
