"""Measured requests, per-case metrics and the saved result document (pure).

The metrics are those of ``vllm bench serve``: request and output-token throughput,
TTFT (time to first token), TPOT (time per output token after the first), ITL
(inter-token latency: gaps between streamed chunks) and E2E latency, each as mean,
median, p90 and p99, and goodput: requests per second that met every given SLO.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from qwend.bench.stats import Summary, summarize

FORMAT = 1
"""Version of the saved result document."""


@dataclass(frozen=True)
class RequestRecord:
    """One request as the client saw it."""

    start_s: float
    """Seconds from the case's start to sending the request."""
    ok: bool
    e2e_s: float
    """Send to last byte (to the error, for a failure)."""
    ttft_s: float | None = None
    """Send to the first content (streamed) or to the whole answer (not streamed)."""
    itl_s: tuple[float, ...] = ()
    """Gaps between streamed content chunks."""
    output_tokens: int = 0
    prompt_tokens: int = 0
    lane: str = ""
    """``X-Qwend-Lane`` of the answer: the lane that served it (empty if not routed by qwend)."""
    kind: str = ""
    """The request shape's label (``text_32``, ``mm_8``)."""
    error: str = ""

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first (None below two tokens)."""
        if not self.ok or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class CaseRun:
    """One run of a scenario: its requests and the wall time until the last answer."""

    case: str
    repeat: int
    wall_s: float
    records: tuple[RequestRecord, ...]


@dataclass(frozen=True)
class Slo:
    """Service-level objectives for goodput (seconds; None: not constrained)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def met(self, r: RequestRecord) -> bool:
        if not r.ok:
            return False
        checks = ((self.ttft_s, r.ttft_s), (self.tpot_s, r.tpot_s), (self.e2e_s, r.e2e_s))
        return all(limit is None or (v is not None and v <= limit) for limit, v in checks)

    @property
    def empty(self) -> bool:
        return self.ttft_s is None and self.tpot_s is None and self.e2e_s is None


@dataclass(frozen=True)
class CaseMetrics:
    """What ``vllm bench serve`` reports, for all runs of one case."""

    case: str
    runs: int
    completed: int
    failed: int
    duration_s: float
    """Sum of the runs' walls."""
    wall: Summary
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft: Summary
    tpot: Summary
    itl: Summary
    e2e: Summary
    goodput: float | None
    lanes: Mapping[str, int]
    """Requests served per lane (``X-Qwend-Lane``)."""
    errors: tuple[str, ...] = ()


def case_metrics(case: str, runs: Sequence[CaseRun], slo: Slo = Slo()) -> CaseMetrics:
    """Aggregate the runs of ``case``."""
    records = [r for run in runs for r in run.records]
    ok = [r for r in records if r.ok]
    duration = sum(run.wall_s for run in runs)
    out_tokens = sum(r.output_tokens for r in ok)
    all_tokens = out_tokens + sum(r.prompt_tokens for r in ok)
    lanes: dict[str, int] = {}
    for r in ok:
        lanes[r.lane or "-"] = lanes.get(r.lane or "-", 0) + 1

    def rate(n: float) -> float:
        return n / duration if duration > 0 else math.nan

    return CaseMetrics(
        case=case,
        runs=len(runs),
        completed=len(ok),
        failed=len(records) - len(ok),
        duration_s=duration,
        wall=summarize([run.wall_s for run in runs]),
        request_throughput=rate(len(ok)),
        output_throughput=rate(out_tokens),
        total_token_throughput=rate(all_tokens),
        ttft=summarize([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot=summarize([t for r in ok if (t := r.tpot_s) is not None]),
        itl=summarize([gap for r in ok for gap in r.itl_s]),
        e2e=summarize([r.e2e_s for r in ok]),
        goodput=None if slo.empty else rate(sum(1 for r in ok if slo.met(r))),
        lanes=lanes,
        errors=tuple(sorted({r.error for r in records if r.error})),
    )


@dataclass(frozen=True)
class Metadata:
    """Where and when a result was measured."""

    target: str
    """What was benchmarked, as given (``router``, ``lane:NAME``, ``role:NAME`` or a URL)."""
    url: str
    """The base URL the requests went to."""
    started_at: float
    """Unix time of the first request."""
    qwend_version: str
    host: str
    model: str
    lanes: Mapping[str, str] = field(default_factory=dict)
    """Lanes that served requests -> their variant (from the control API, where reachable)."""
    config_digest: str = ""
    """SHA-256 of the daemon's configuration file, where readable."""
    via_router: bool = False
    """Requests went through qwend's router (lane attribution from ``X-Qwend-Lane``)."""
    time_scale: float = 1.0
    """The lanes run this much faster than real time (sim lanes); figures are multiplied back."""


@dataclass(frozen=True)
class BenchResult:
    """A saved benchmark: metadata and every request of every run."""

    id: str
    meta: Metadata
    runs: tuple[CaseRun, ...]
    slo: Slo = Slo()

    @property
    def cases(self) -> list[str]:
        return list(dict.fromkeys(run.case for run in self.runs))

    def runs_of(self, case: str) -> list[CaseRun]:
        return [run for run in self.runs if run.case == case]

    def metrics(self) -> list[CaseMetrics]:
        return [case_metrics(case, self.runs_of(case), self.slo) for case in self.cases]

    @property
    def failed(self) -> int:
        return sum(1 for run in self.runs for r in run.records if not r.ok)

    def variants_of(self, case: str) -> frozenset[str]:
        """Variants of the lanes that served ``case`` (empty when unknown)."""
        lanes = {r.lane for run in self.runs_of(case) for r in run.records if r.ok}
        found = {self.meta.lanes.get(lane, "") for lane in lanes}
        return frozenset() if "" in found else frozenset(found)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


def result_from_dict(data: Mapping[str, Any]) -> BenchResult:
    """Inverse of ``BenchResult.to_dict`` (raises KeyError/TypeError/ValueError when malformed)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported result format {data.get('format')!r} (expected {FORMAT})")
    runs = tuple(
        CaseRun(
            case=run["case"],
            repeat=int(run["repeat"]),
            wall_s=float(run["wall_s"]),
            records=tuple(
                RequestRecord(**{**rec, "itl_s": tuple(rec.get("itl_s", ()))})
                for rec in run["records"]
            ),
        )
        for run in data["runs"]
    )
    return BenchResult(
        id=str(data["id"]),
        meta=Metadata(**data["meta"]),
        runs=runs,
        slo=Slo(**data.get("slo", {})),
    )


def scaled(run: CaseRun, factor: float) -> CaseRun:
    """``run`` with every duration multiplied by ``factor`` (a sim lane running faster)."""
    if factor == 1:
        return run

    def one(r: RequestRecord) -> RequestRecord:
        return RequestRecord(
            start_s=r.start_s * factor,
            ok=r.ok,
            e2e_s=r.e2e_s * factor,
            ttft_s=None if r.ttft_s is None else r.ttft_s * factor,
            itl_s=tuple(gap * factor for gap in r.itl_s),
            output_tokens=r.output_tokens,
            prompt_tokens=r.prompt_tokens,
            lane=r.lane,
            kind=r.kind,
            error=r.error,
        )

    return CaseRun(run.case, run.repeat, run.wall_s * factor, tuple(one(r) for r in run.records))
