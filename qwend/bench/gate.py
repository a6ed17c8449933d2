"""The latency gate of a promotion: bench incumbent and candidate, decide (asyncio + aiohttp).

The promoter calls ``measure`` for each side (the candidate before it is routed)
and ``decide`` on the two measurements. Both sides run the same seed case the same
number of times from this process, so the comparison is like for like; the
incumbent keeps serving live traffic while it is measured, which can only make it
look slower (the gate errs towards the candidate by that load, not more).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence

from qwend.api.messages import GateRequest, GateResult
from qwend.bench.compare import compare_case, gate
from qwend.bench.results import BenchResult, CaseRun, Metadata
from qwend.bench.runner import RunSettings, run_scenarios
from qwend.bench.scenarios import ScenarioError, resolve

MAX_REPEAT = 20
"""Runs per side a gate may ask for (each run of concurrency_8 is ~10 s on a 910A)."""


def check(request: GateRequest) -> None:
    """Raise ``ScenarioError`` for an unusable gate, before anything changes."""
    resolve([request.scenario])
    if not 1 <= request.repeat <= MAX_REPEAT:
        raise ScenarioError(f"gate repeat must be within 1-{MAX_REPEAT}, got {request.repeat}")
    if not 0 <= request.max_regression <= 10:
        raise ScenarioError(f"max regression must be within 0-1000%, got {request.max_regression}")
    if not request.time_scale > 0:
        raise ScenarioError(f"time scale must be positive, got {request.time_scale}")


async def measure(
    request: GateRequest,
    base_url: str,
    model: str,
    *,
    headers: Mapping[str, str] | None = None,
    tls: ssl.SSLContext | bool = True,
) -> list[CaseRun]:
    """Run the gate's scenario on one lane (``headers`` and ``tls``: a remote lane's key and
    TLS settings, as the router uses them)."""
    settings = RunSettings(
        base_url, model, max(1, request.repeat), request.time_scale, headers=headers or {}, ssl=tls
    )
    return await run_scenarios(resolve([request.scenario]), settings)


def decide(
    request: GateRequest,
    incumbent: str,
    incumbent_runs: Sequence[CaseRun],
    candidate: str,
    candidate_runs: Sequence[CaseRun],
) -> GateResult:
    """Compare the two measurements; accept only a candidate measurably within the margin."""

    def as_result(name: str, runs: Sequence[CaseRun]) -> BenchResult:
        return BenchResult(name, Metadata(f"lane:{name}", "", 0.0, "", "", ""), tuple(runs))

    comparison = compare_case(
        as_result(incumbent, incumbent_runs), as_result(candidate, candidate_runs), request.scenario
    )
    decision = gate(comparison, request.max_regression)
    interval = comparison.interval
    ratio = comparison.e2e_b / comparison.e2e_a if comparison.e2e_a > 0 else float("inf")
    return GateResult(
        scenario=request.scenario,
        incumbent=incumbent,
        candidate=candidate,
        accepted=decision.accept,
        reason=decision.reason,
        max_regression=request.max_regression,
        incumbent_wall_s=comparison.wall_a,
        candidate_wall_s=comparison.wall_b,
        ratio=interval.ratio if interval else ratio,
        ratio_low=interval.low if interval else ratio,
        ratio_high=interval.high if interval else ratio,
        samples=min(comparison.samples_a, comparison.samples_b),
    )
