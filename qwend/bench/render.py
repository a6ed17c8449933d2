"""Tables for people (pure): a result, a load report and a comparison."""

from __future__ import annotations

import math

from qwend.bench.compare import CaseComparison, Verdict
from qwend.bench.results import BenchResult, CaseMetrics
from qwend.bench.scenarios import seed_figure
from qwend.bench.stats import Summary


def _s(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _lanes(m: CaseMetrics) -> str:
    return " ".join(f"{lane}:{n}" for lane, n in sorted(m.lanes.items())) or "-"


def _seed(result: BenchResult, m: CaseMetrics) -> tuple[str, str]:
    figure = seed_figure(m.case, result.variants_of(m.case), result.meta.via_router)
    if figure is None:
        return "-", "-"
    low, high = figure
    mid = (low + high) / 2
    seed = f"{low:.3f}" if low == high else f"{low:.3f}~{high:.3f}"
    return seed, f"{(m.wall.median - mid) / mid:+.1%}"


def render_result(result: BenchResult) -> str:
    """The cases table (walls next to the seed's where it has the figure) and any load reports."""
    meta = result.meta
    head = f"bench {result.id}: {meta.target} ({meta.url}), model {meta.model or '-'}"
    if meta.time_scale != 1:
        head += f", time scale {meta.time_scale:g} (figures multiplied back)"
    header = [
        "case",
        "runs",
        "ok",
        "fail",
        "wall p50 s",
        "seed s",
        "vs seed",
        "E2E mean s",
        "lanes",
    ]
    rows = []
    for m in result.metrics():
        seed, error = _seed(result, m)
        rows.append([
            m.case, str(m.runs), str(m.completed), str(m.failed), _s(m.wall.median),
            seed, error, _s(m.e2e.mean), _lanes(m),
        ])  # fmt: skip
    parts = [head, _table(header, rows)]
    variants = ", ".join(f"{lane}={v}" for lane, v in sorted(meta.lanes.items()))
    if variants:
        parts.append(f"lanes: {variants}")
    errors = [f"{m.case}: {e}" for m in result.metrics() for e in m.errors]
    if errors:
        parts.append("errors:\n" + "\n".join(f"  {e}" for e in errors[:10]))
    parts += [render_load(m) for m in result.metrics() if m.case.startswith("load_")]
    return "\n\n".join(parts)


def _summary_rows(name: str, s: Summary) -> list[list[str]]:
    return [
        [f"mean {name} (ms)", _ms(s.mean)],
        [f"median {name} (ms)", _ms(s.median)],
        [f"p90 {name} (ms)", _ms(s.p90)],
        [f"p99 {name} (ms)", _ms(s.p99)],
    ]


def render_load(m: CaseMetrics) -> str:
    """A ``vllm bench serve``-style report of one case."""
    rows = [
        ["successful requests", str(m.completed)],
        ["failed requests", str(m.failed)],
        ["benchmark duration (s)", _s(m.duration_s)],
        ["request throughput (req/s)", _s(m.request_throughput)],
        ["output token throughput (tok/s)", _s(m.output_throughput)],
        ["total token throughput (tok/s)", _s(m.total_token_throughput)],
    ]
    if m.goodput is not None:
        rows.append(["request goodput (req/s)", _s(m.goodput)])
    for name, summary in (("TTFT", m.ttft), ("TPOT", m.tpot), ("ITL", m.itl), ("E2EL", m.e2e)):
        rows += _summary_rows(name, summary)
    return f"{m.case}\n" + _table(["metric", "value"], rows)


def _verdict(c: CaseComparison) -> str:
    return c.verdict.value if c.verdict is Verdict.SAME else f"B {c.verdict.value}"


def render_comparison(name_a: str, name_b: str, rows: list[CaseComparison]) -> str:
    """The side-by-side table: walls, their ratio, the E2E ratio's interval and a verdict."""
    header = ["case", "A wall s", "B wall s", "B/A wall", "B/A E2E [95% CI]", "n A/B", "verdict"]
    table = []
    for c in rows:
        ci = (
            "-"
            if c.interval is None
            else f"{c.interval.ratio:.3f} [{c.interval.low:.3f}, {c.interval.high:.3f}]"
        )
        table.append([
            c.case, _s(c.wall_a), _s(c.wall_b), _s(c.wall_ratio), ci,
            f"{c.samples_a}/{c.samples_b}", _verdict(c),
        ])  # fmt: skip
    return f"A: {name_a}\nB: {name_b}\n\n" + _table(header, table)
