"""Hand-made results for the pure tests."""

from __future__ import annotations

from qwend.bench.results import BenchResult, CaseRun, Metadata, RequestRecord


def record(e2e: float, *, lane: str = "", ok: bool = True, ttft: float | None = None,
           tokens: int = 8, itl: tuple[float, ...] = ()) -> RequestRecord:  # fmt: skip
    return RequestRecord(
        start_s=0.0,
        ok=ok,
        e2e_s=e2e,
        ttft_s=e2e if ttft is None else ttft,
        itl_s=itl,
        output_tokens=tokens if ok else 0,
        prompt_tokens=24 if ok else 0,
        lane=lane,
        kind="text_32",
        error="" if ok else "HTTP 503: busy",
    )


def result(
    rid: str, case_walls: dict[str, list[list[float]]], *, lanes: dict[str, str] | None = None,
    lane: str = "", target: str = "router", started: float = 1000.0, via_router: bool = False,
) -> BenchResult:  # fmt: skip
    """``case_walls[case]`` is a list of runs, each a list of request E2E latencies."""
    runs = tuple(
        CaseRun(case, i, max(e2es), tuple(record(e, lane=lane) for e in e2es))
        for case, per_run in case_walls.items()
        for i, e2es in enumerate(per_run)
    )
    meta = Metadata(
        target=target,
        url="http://127.0.0.1:1",
        started_at=started,
        qwend_version="0.1.0",
        host="h",
        model="m",
        lanes=lanes or {},
        via_router=via_router,
    )
    return BenchResult(rid, meta, runs)
