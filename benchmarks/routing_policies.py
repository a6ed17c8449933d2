"""Which text policy serves mixed traffic best? Every policy on the same sim lanes and workload.

The seed's topology runs on real ``qwend-sim`` lanes: ``mm`` (multimodal,
baseline), ``stable`` (recurrent_v2, or baseline in ``pre_promotion``) and
``fast`` (throughput, v3). Per scenario the text capacity is measured first
(closed loop, every text lane at its in-flight limit). Then, for each policy
(balanced_long_text, least_work, round_robin, least_outstanding), an
in-process qwend router is started in front of the lanes and receives:

1. a warm-up (so ``least_work`` has something to learn from);
2. the seed's mixed cases (``2 text64 + 2 mm8`` etc.: all requests at once,
   wall time), compared with the seed's adaptive-router figures;
3. the load sweep: for each ``--loads`` fraction of the measured text
   capacity, a seeded Poisson workload of text requests of 8-256 output tokens
   and image requests (``mm_8``), half of them streamed. The same seed serves
   every load and policy, so all policies see the same arrivals. Reported are
   makespan and p50/p95/p99 end-to-end latency over all requests and over text
   only, and the p95 ratios least_work/round_robin and
   least_work/balanced_long_text per load.

Every policy runs once per ``--limits`` value, the routers' per-lane admission
limit: 8 (qwend's default: past it requests wait in the router's FIFO queue and
go to whichever lane frees first, whatever the policy) and 32 (the sim engine's
own batch size: the router hands every request to a lane at once and the lanes
batch and queue, as routers without admission control do). The capacity, and so
every arrival rate, is measured once at the default limit: both runs see the
same arrivals.

Lanes run with ``--time-scale`` (default 20); all times are reported in lane
time (measured seconds multiplied by the scale), comparable with the seed's
figures.

    .venv/bin/python benchmarks/routing_policies.py --requests 200   # about 15 minutes
    .venv/bin/python benchmarks/routing_policies.py --limits 8 --loads 0.85 0.95 --requests 300
    .venv/bin/python benchmarks/routing_policies.py --policies least_work round_robin --json o.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from qwend.bench.scenarios import SEED_CASES, SEED_FIGURES, SUITES
from qwend.config.model import RouterConfig, TextPolicy
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY
from qwend.routing.lanetable import LaneTable, RoutableLane
from qwend.sim.images import data_url, solid_png
from qwend.sim.latency import SEED_PROMPT_TOKENS, profile_for, single_request_s

MODEL = "qwen3.5-9b"
TEXT_PROMPT = "Write a short note about the Ascend 910A NPU and its use."
IMAGE_PROMPT = "What colour is this image? Answer in one word."
IMAGE_URL = data_url(solid_png(448, 448))
SCENARIOS = {
    # The seed's recommended topology (after 18084 was promoted to recurrent_v2).
    "seed": (("mm", "multimodal", "baseline"), ("stable", "stable", "recurrent_v2"),
             ("fast", "throughput", "v3")),
    # The seed before that promotion: 18084 still on baseline (degrades most under load).
    "pre_promotion": (("mm", "multimodal", "baseline"), ("stable", "stable", "baseline"),
                      ("fast", "throughput", "v3")),
}  # fmt: skip
TEXT_SIZES = (8, 16, 32, 64, 128, 256)
_MIXED_CASES = {  # "2 text8 + 2 mm8" -> router_2text8_2mm8: the cases of `qwenctl bench`
    SEED_CASES[case].seed_label.removeprefix("mixed(").removesuffix(") wall"): case
    for case in SUITES["seed-router"]
}
SEED_MIXED = {label: SEED_FIGURES["router"][case][0] for label, case in _MIXED_CASES.items()}
"""The seed's adaptive router (18088), wall seconds."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_lane(
    name: str, variant: str, scale: float, state_dir: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = [
        str(Path(sys.executable).parent / "qwend-sim"), "serve", "--port", str(port),
        "--served-model-name", MODEL, "--variant", variant, "--lane-name", name,
        "--startup-delay", "0", "--time-scale", str(scale), "--log-level", "warning",
    ]  # fmt: skip
    env = dict(os.environ, QWEND_SIM_STATE_DIR=state_dir, ASCEND_RT_VISIBLE_DEVICES="0")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"sim lane {name} ({variant}) did not start on port {port}")


def body(max_tokens: int, image: bool, stream: bool) -> dict[str, object]:
    content: object = (
        [
            {"type": "text", "text": IMAGE_PROMPT},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        ]
        if image
        else TEXT_PROMPT
    )
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


@dataclass(frozen=True)
class Job:
    at: float
    """Arrival time (lane seconds after the start)."""
    max_tokens: int
    image: bool
    stream: bool


def workload(n: int, rate: float, image_share: float, seed: int) -> list[Job]:
    """A seeded Poisson arrival process of text (8-256 tokens) and image requests."""
    rng = random.Random(seed)
    jobs, t = [], 0.0
    for _ in range(n):
        t += rng.expovariate(rate)
        image = rng.random() < image_share
        size = 8 if image else rng.choice(TEXT_SIZES)
        jobs.append(Job(t, size, image, rng.random() < 0.5))
    return jobs


def mixed_case(name: str) -> list[dict[str, object]]:
    """``"2 text64 + 2 mm8"`` -> the request bodies (``qwenctl bench``'s, without temperature)."""
    shapes = SEED_CASES[_MIXED_CASES[name]].requests
    return [body(shape.max_tokens, shape.image, shape.stream) for shape in shapes]


@contextlib.asynccontextmanager
async def router(
    policy: TextPolicy, lanes: LaneTable, limit: int = RouterConfig.max_in_flight_per_lane
) -> AsyncIterator[tuple[str, web.Application]]:
    config = RouterConfig(text_policy=policy, max_in_flight_per_lane=limit)
    app = make_router_app(config, lanes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions", app
    finally:
        await runner.cleanup()


async def send(
    session: aiohttp.ClientSession, url: str, doc: dict[str, object]
) -> tuple[float, str, int]:
    t0 = time.monotonic()
    async with session.post(url, json=doc) as resp:
        await resp.read()
        return time.monotonic() - t0, resp.headers.get("X-Qwend-Lane", ""), resp.status


@dataclass
class LoadResult:
    """One policy at one load level."""

    policy: str
    load: float
    """Offered text load as a fraction of the measured text capacity."""
    rate: float
    """Arrivals per lane second (text and images)."""
    makespan: float
    p50: float
    p95: float
    p99: float
    mean: float
    text_p50: float
    text_p95: float
    errors: int
    lanes: dict[str, int]


@dataclass
class PolicyResult:
    policy: str
    mixed: dict[str, float]
    loads: list[LoadResult]
    learned: dict[str, str]


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def text_job(rng: random.Random) -> dict[str, object]:
    return body(rng.choice(TEXT_SIZES), False, False)


async def measure_capacity(lanes: LaneTable, scale: float, requests: int, seed: int) -> float:
    """Text requests per lane second the text lanes finish when kept full (closed loop).

    As many clients as the text lanes have admission slots each send text requests
    of the workload's size mix back to back, so every lane stays at its in-flight
    limit: that is the most the lanes can sustain behind this router.
    """
    slots = RouterConfig().max_in_flight_per_lane * sum(1 for lane in lanes.snapshot() if lane.text)
    rng = random.Random(seed + 2000)
    docs = [text_job(rng) for _ in range(requests)]
    async with (
        router(TextPolicy.LEAST_OUTSTANDING, lanes) as (url, _),
        aiohttp.ClientSession() as s,
    ):
        done: list[float] = []
        t0 = time.monotonic()

        async def client() -> None:
            while docs:
                await send(s, url, docs.pop())
                done.append(time.monotonic())

        await asyncio.gather(*(client() for _ in range(slots)))
    # Ignore the ramp-down (the last clients finish on emptier lanes).
    steady = sorted(done)[: max(1, int(len(done) * 0.8))]
    return len(steady) / ((steady[-1] - t0) * scale)


def summarise(
    policy: str, load: float, rate: float, jobs: list[Job], results: list[tuple[float, str, int]],
    makespan: float, scale: float,
) -> LoadResult:  # fmt: skip
    lat = [r[0] * scale for r in results]
    text = [r[0] * scale for r, job in zip(results, jobs, strict=True) if not job.image]
    used: dict[str, int] = {}
    for _, lane, _ in results:
        used[lane] = used.get(lane, 0) + 1
    return LoadResult(
        policy, load, rate, makespan, pct(lat, 0.5), pct(lat, 0.95), pct(lat, 0.99),
        statistics.fmean(lat), pct(text, 0.5), pct(text, 0.95),
        sum(1 for r in results if r[2] != 200), used,
    )  # fmt: skip


async def run_policy(
    policy: TextPolicy,
    lanes: LaneTable,
    sweep: list[tuple[float, float, list[Job]]],
    warmup: list[Job],
    args: argparse.Namespace,
    limit: int,
) -> PolicyResult:
    """Warm-up, the seed's mixed cases, then every load level, on one router."""
    scale = args.time_scale
    async with (
        router(policy, lanes, limit) as (url, app),
        aiohttp.ClientSession() as session,
    ):
        await play(session, url, warmup, scale)
        mixed = {}
        for name in SEED_MIXED:
            walls = []
            for _ in range(args.repeat):
                t0 = time.monotonic()
                await asyncio.gather(*(send(session, url, doc) for doc in mixed_case(name)))
                walls.append((time.monotonic() - t0) * scale)
            mixed[name] = statistics.median(walls)
        loads = []
        for load, rate, jobs in sweep:
            t0 = time.monotonic()
            results = await play(session, url, jobs, scale)
            makespan = (time.monotonic() - t0) * scale
            loads.append(summarise(str(policy), load, rate, jobs, results, makespan, scale))
            print(
                f"  {policy} limit {limit} load {load:.2f}: p95 {loads[-1].p95:.1f} s",
                file=sys.stderr,
            )
        snap = app[ROUTER_KEY].stats_snapshot()
        learned = {
            lane.name: f"itl={lane.perf.itl_s * scale:.3f}+{lane.perf.itl_slope * scale:.4f}*n "
            f"prefill/tok={lane.perf.prefill_s_per_token * scale:.5f}"
            f"+{lane.perf.prefill_slope * scale:.5f}*n "
            f"efficient concurrency={lane.perf.efficient_concurrency}/{lane.limit}"
            for lane in snap.lanes
        }
    return PolicyResult(str(policy), mixed, loads, learned)


async def play(
    session: aiohttp.ClientSession, url: str, jobs: list[Job], scale: float
) -> list[tuple[float, str, int]]:
    start = time.monotonic()

    async def one(job: Job) -> tuple[float, str, int]:
        await asyncio.sleep(max(0.0, start + job.at / scale - time.monotonic()))
        return await send(session, url, body(job.max_tokens, job.image, job.stream))

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def p95_floor(scenario: str) -> float:
    """A 256-token request alone on the fastest text lane: no policy's p95 can beat it."""
    variants = [v for _, role, v in SCENARIOS[scenario] if role != "multimodal"]
    return min(
        single_request_s(profile_for(v), SEED_PROMPT_TOKENS, max(TEXT_SIZES)) for v in variants
    )


def _ratio(by: dict[str, LoadResult], a: str, b: str) -> str:
    if a in by and b in by and by[b].p95 > 0:
        return f"{by[a].p95 / by[b].p95:.2f}"
    return "-"


def render(results: list[PolicyResult], scenario: str, capacity: float) -> str:
    names = [r.policy for r in results]
    out = [f"Measured text capacity: {capacity:.3f} text requests per lane second "
           f"(closed loop, every text lane at its in-flight limit).", "",
           "Poisson workload (lane seconds; load = offered text load / capacity):", "",
           "| load | rate/s | policy | makespan | p50 | p95 | p99 | mean | text p50 | text p95 "
           "| errors | requests per lane |",
           "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "| --- |"]  # fmt: skip
    levels = [lr.load for lr in results[0].loads]
    for i, _ in enumerate(levels):
        for r in results:
            lr = r.loads[i]
            lanes = ", ".join(f"{k}={v}" for k, v in sorted(lr.lanes.items()))
            out.append(
                f"| {lr.load:.2f} | {lr.rate:.2f} | {r.policy} | {lr.makespan:.1f} | "
                f"{lr.p50:.2f} | {lr.p95:.2f} | {lr.p99:.2f} | {lr.mean:.2f} | "
                f"{lr.text_p50:.2f} | {lr.text_p95:.2f} | {lr.errors} | {lanes} |"
            )
    floor = p95_floor(scenario)
    out += ["", f"p95 floor (a {max(TEXT_SIZES)}-token request alone on the fastest text lane): "
            f"{floor:.2f} s", "",
            "| load | least_work p95 / round_robin p95 (target <= 0.70) "
            "| least_work p95 / balanced_long_text p95 (target <= 1.00) | targets met |",
            "| ---: | ---: | ---: | --- |"]  # fmt: skip
    for i, level in enumerate(levels):
        by = {r.policy: r.loads[i] for r in results}
        rr, blt = (
            _ratio(by, "least_work", "round_robin"),
            _ratio(by, "least_work", "balanced_long_text"),
        )
        met = [rr != "-" and float(rr) <= 0.70, blt != "-" and float(blt) <= 1.0]
        verdict = (
            "both"
            if all(met)
            else "neither"
            if not any(met)
            else ("vs round_robin only" if met[0] else "vs balanced_long_text only")
        )
        out.append(f"| {level:.2f} | {rr} | {blt} | {verdict} |")
    out += ["", "Seed mixed cases (wall, lane seconds; seed = the seed's adaptive router):", "",
            "| case | seed | " + " | ".join(names) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]  # fmt: skip
    for case, seed in SEED_MIXED.items():
        cells = " | ".join(f"{r.mixed[case]:.3f}" for r in results)
        out.append(f"| {case} | {seed:.3f} | {cells} |")
    return "\n".join(out)


async def main_async(
    args: argparse.Namespace, scenario: str
) -> tuple[float, dict[int, list[PolicyResult]]]:
    procs = []
    with tempfile.TemporaryDirectory(prefix="qwend-policies-") as state:
        try:
            routable = []
            for name, role, variant in SCENARIOS[scenario]:
                proc, url = start_lane(name, variant, args.time_scale, state)
                procs.append(proc)
                mm = role == "multimodal"  # as in etc/qwend/lanes.d: the mm lane serves images only
                routable.append(
                    RoutableLane(name, role, variant, url, not mm, mm, True, True, MODEL)
                )
            table = LaneTable(tuple(routable))
            capacity = await measure_capacity(
                table, args.time_scale, args.capacity_requests, args.seed
            )
            print(f"{scenario}: text capacity {capacity:.3f}/s", file=sys.stderr)
            # Same seed at every load and for every policy: the same arrivals, time-compressed.
            sweep = []
            for load in args.loads:
                rate = load * capacity / (1.0 - args.image_share)
                sweep.append(
                    (load, rate, workload(args.requests, rate, args.image_share, args.seed))
                )
            warm_rate = args.loads[0] * capacity / (1.0 - args.image_share)
            warmup = workload(args.warmup, warm_rate, args.image_share, args.seed + 1000)
            results: dict[int, list[PolicyResult]] = {}
            for limit in args.limits:
                for policy in args.policies:
                    done = await run_policy(TextPolicy(policy), table, sweep, warmup, args, limit)
                    results.setdefault(limit, []).append(done)
                    print(f"done: {scenario} {policy} {limit} {done.learned}", file=sys.stderr)
            return capacity, results
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", default=[str(p) for p in TextPolicy])
    parser.add_argument(
        "--loads", nargs="+", type=float, default=[0.7, 0.85, 0.95],
        help="offered text load as fractions of the measured text capacity",
    )  # fmt: skip
    parser.add_argument(
        "--limits", nargs="+", type=int, default=[RouterConfig.max_in_flight_per_lane, 32],
        help="per-lane admission limits to run every policy with (the routers' "
        "max_in_flight_per_lane; 32 is the sim engine's batch size: the router leaves "
        "queueing to the lanes)",
    )  # fmt: skip
    parser.add_argument("--requests", type=int, default=160, help="requests per load level")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--capacity-requests", type=int, default=64)
    parser.add_argument("--image-share", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each mixed case")
    parser.add_argument("--time-scale", type=float, default=20.0)
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--json", help="write the results as JSON here")
    args = parser.parse_args(argv)
    everything = {}
    for scenario in args.scenarios:
        began = time.monotonic()
        capacity, results = asyncio.run(main_async(args, scenario))
        lanes = ", ".join(f"{name}={variant}" for name, _, variant in SCENARIOS[scenario])
        loads = ", ".join(f"{load:g}" for load in args.loads)
        print(
            f"\n## scenario {scenario} ({lanes}): seed {args.seed}, {args.requests} requests per "
            f"load at loads {loads} of text capacity ({args.image_share:.0%} images), "
            f"time scale {args.time_scale:g}, CPUs {os.cpu_count()}, "
            f"{time.monotonic() - began:.0f} s wall\n"
        )
        for limit, by_limit in results.items():
            print(f"\n### Admission limit {limit} requests per lane\n")
            print(render(by_limit, scenario, capacity))
        everything[scenario] = {
            "capacity": capacity,
            "limits": {str(k): [asdict(r) for r in v] for k, v in results.items()},
        }
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
