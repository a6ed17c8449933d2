"""Prefill/decode disaggregation vs co-located lanes, and the cost of the PD proxy hop.

Two deployments of three ``qwend-sim`` lanes each, behind the real router app, measured
in one session: ``colocated`` (three lanes serving whole requests, least_outstanding)
and ``1p2d`` (one ``--kv-role prefill`` lane and two ``--kv-role decode`` lanes that
refuse a request without transfer parameters; the router runs the handshake). Each
deployment's router runs in a child process of its own (``--serve-router``), so its CPU
time per request is read from ``/proc/PID/stat`` apart from the client's.

Mixes, all streamed with usage, a closed loop of ``--concurrency`` clients:

- ``prompt_heavy``: ~3,000-token prompts, 16 output tokens (prefill dominates);
- ``decode_heavy``: ~60-token prompts, 200 output tokens (decode dominates);
- ``hop``: one client, ~60-token prompt, 2 output tokens, the lanes at ``--hop-scale``
  (nearly instant): what the second hop adds (router work plus the KV pull).

Per request: TTFT (sent to first content chunk) and TPOT ((end - TTFT) / (tokens - 1)),
reported in lane time (measured seconds x the time scale), p50/p99 side by side.

    .venv/bin/python benchmarks/pd.py                         # about 4 minutes
    .venv/bin/python benchmarks/pd.py --requests 40 --concurrency 4 --json pd.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from qwend.config.model import KvRole, RouterConfig, TextPolicy
from qwend.router.app import make_router_app
from qwend.routing.lanetable import LaneTable, RoutableLane

MODEL = "qwen3.5-bench"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
DEPLOYMENTS: dict[str, tuple[str, ...]] = {
    "colocated": ("both", "both", "both"),
    "1p2d": ("prefill", "decode", "decode"),
}
PROMPT_HEAVY = "word " * 3000
SHORT = "Tell me a long story about the sea. " * 6


@dataclass(frozen=True)
class Mix:
    name: str
    prompt: str
    max_tokens: int


MIXES = (Mix("prompt_heavy", PROMPT_HEAVY, 16), Mix("decode_heavy", SHORT, 200))
HOP = Mix("hop", SHORT, 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{what} did not start ({url})")


def start_lane(name: str, kv: str, scale: float, state: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = [
        str(Path(sys.executable).parent / "qwend-sim"), "serve", "--port", str(port),
        "--served-model-name", MODEL, "--variant", "v3", "--lane-name", name,
        "--startup-delay", "0", "--time-scale", str(scale), "--log-level", "warning",
        "--kv-role", kv,
    ]  # fmt: skip
    if kv == "decode":
        argv += ["--kv-without", "refuse"]
    env = dict(os.environ, QWEND_SIM_STATE_DIR=state, ASCEND_RT_VISIBLE_DEVICES="0")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/v1/models", proc, f"sim lane {name}")
    return proc, url


@contextlib.contextmanager
def deployment(kinds: Sequence[str], scale: float) -> Iterator[tuple[str, int]]:
    """Three sim lanes and a router process in front: ``(router url, router pid)``."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="qwend-pd-bench-") as state:
        try:
            lanes = []
            for index, kind in enumerate(kinds):
                name = f"{kind[0]}{index}"
                proc, url = start_lane(name, kind, scale, state)
                procs.append(proc)
                lanes.append({"name": name, "url": url, "kv": kind})
            port = _free_port()
            argv = [sys.executable, __file__, "--serve-router", str(port), json.dumps(lanes)]
            router = subprocess.Popen(argv)
            procs.append(router)
            url = f"http://127.0.0.1:{port}"
            _wait_http(url + "/health", router, "router")
            yield url, router.pid
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def serve_router(port: int, spec: str) -> None:
    """The child process: the router app over the lanes in ``spec`` until SIGTERM."""
    lanes = tuple(
        RoutableLane(
            lane["name"], lane["name"], "v3", lane["url"], True, False, True, True, MODEL,
            kv_role=None if lane["kv"] == "both" else KvRole(lane["kv"]),
        )
        for lane in json.loads(spec)
    )  # fmt: skip
    config = RouterConfig(text_policy=TextPolicy.LEAST_OUTSTANDING)
    app = make_router_app(config, LaneTable(lanes))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass(frozen=True)
class Sample:
    ttft: float
    tpot: float | None
    e2e: float
    ok: bool


async def one(session: aiohttp.ClientSession, url: str, mix: Mix) -> Sample:
    doc = {
        "model": MODEL,
        "messages": [{"role": "user", "content": mix.prompt}],
        "max_tokens": mix.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.monotonic()
    first: float | None = None
    tokens = 0
    async with session.post(url + "/v1/chat/completions", json=doc) as resp:
        ok = resp.status == 200
        async for line in resp.content:
            if not line.startswith(b"data: {"):
                continue
            event = json.loads(line[6:])
            if "error" in event:
                ok = False
            if event.get("choices") and first is None:
                first = time.monotonic()
            usage = event.get("usage")
            if usage:
                tokens = int(usage["completion_tokens"])
    end = time.monotonic()
    ttft = (first or end) - t0
    tpot = (end - t0 - ttft) / (tokens - 1) if tokens > 1 else None
    return Sample(ttft, tpot, end - t0, ok and tokens == mix.max_tokens)


async def closed_loop(url: str, mix: Mix, requests: int, concurrency: int) -> list[Sample]:
    samples: list[Sample] = []
    left = list(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        while left:
            left.pop()
            samples.append(await one(session, url, mix))

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await one(session, url, mix)  # warm: connections, the lanes' first batch
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return samples


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Row:
    mix: str
    deployment: str
    requests: int
    failed: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    e2e_p50_ms: float
    router_cpu_ms_per_req: float


def row(mix: str, name: str, samples: list[Sample], scale: float, cpu: float) -> Row:
    ms = 1000 * scale
    ttft = [s.ttft for s in samples]
    tpot = [s.tpot for s in samples if s.tpot is not None]
    return Row(
        mix=mix,
        deployment=name,
        requests=len(samples),
        failed=sum(not s.ok for s in samples),
        ttft_p50_ms=round(pct(ttft, 0.5) * ms, 1),
        ttft_p99_ms=round(pct(ttft, 0.99) * ms, 1),
        tpot_p50_ms=round(pct(tpot, 0.5) * ms, 2),
        tpot_p99_ms=round(pct(tpot, 0.99) * ms, 2),
        e2e_p50_ms=round(statistics.median(s.e2e for s in samples) * ms, 1),
        router_cpu_ms_per_req=round(1000 * cpu / max(1, len(samples) + 1), 3),
    )


def measure(mix: Mix, scale: float, requests: int, concurrency: int) -> list[Row]:
    rows = []
    for name, kinds in DEPLOYMENTS.items():
        with deployment(kinds, scale) as (url, pid):
            before = cpu_s(pid)
            samples = asyncio.run(closed_loop(url, mix, requests, concurrency))
            rows.append(row(mix.name, name, samples, scale, cpu_s(pid) - before))
        print(f"  {mix.name} {name}: done", file=sys.stderr)
    return rows


def table(rows: Sequence[Row]) -> str:
    head = (
        "| mix | deployment | n | failed | TTFT p50 | TTFT p99 | TPOT p50 | TPOT p99 "
        "| E2E p50 | router CPU ms/req |"
    )
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r.mix} | {r.deployment} | {r.requests} | {r.failed} | {r.ttft_p50_ms} "
            f"| {r.ttft_p99_ms} | {r.tpot_p50_ms} | {r.tpot_p99_ms} | {r.e2e_p50_ms} "
            f"| {r.router_cpu_ms_per_req} |"
        )
    return "\n".join(lines)


def ratios(rows: Sequence[Row]) -> str:
    lines = ["| mix | TTFT p50 1p2d/colocated | TTFT p99 | TPOT p50 | TPOT p99 | CPU/req |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    by = {(r.mix, r.deployment): r for r in rows}
    for mix in dict.fromkeys(r.mix for r in rows):
        a, b = by[(mix, "colocated")], by[(mix, "1p2d")]

        def q(x: float, y: float) -> str:
            return f"{y / x:.2f}x" if x else "-"

        lines.append(
            f"| {mix} | {q(a.ttft_p50_ms, b.ttft_p50_ms)} | {q(a.ttft_p99_ms, b.ttft_p99_ms)} "
            f"| {q(a.tpot_p50_ms, b.tpot_p50_ms)} | {q(a.tpot_p99_ms, b.tpot_p99_ms)} "
            f"| {q(a.router_cpu_ms_per_req, b.router_cpu_ms_per_req)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--scale", type=float, default=20.0, help="sim --time-scale of the mixes")
    p.add_argument("--hop-scale", type=float, default=1000.0, help="sim --time-scale, hop")
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--hop-requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=6)
    p.add_argument("--json", type=Path)
    p.add_argument("--serve-router", nargs=2, metavar=("PORT", "LANES"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_router:
        serve_router(int(args.serve_router[0]), args.serve_router[1])
        return
    rows: list[Row] = []
    for mix in MIXES:
        rows += measure(mix, args.scale, args.requests, args.concurrency)
    hop = measure(HOP, args.hop_scale, args.hop_requests, 1)
    print(f"Mixes at --time-scale {args.scale:g}, concurrency {args.concurrency}, lane ms:\n")
    print(table(rows))
    print("\n" + ratios(rows))
    print(f"\nThe hop (--time-scale {args.hop_scale:g}, one client; real ms):\n")
    real = [
        Row(**{**asdict(r), **{k: round(v / args.hop_scale, 3) for k, v in asdict(r).items()
                               if k.endswith("_ms")}})
        for r in hop
    ]  # fmt: skip
    print(table(real))
    a, b = real
    print(
        f"\nadded by the PD hop: E2E p50 {b.e2e_p50_ms - a.e2e_p50_ms:+.3f} ms, router CPU "
        f"{b.router_cpu_ms_per_req - a.router_cpu_ms_per_req:+.3f} ms/request"
    )
    if args.json is not None:
        doc = {"mixes": [asdict(r) for r in rows], "hop_real_ms": [asdict(r) for r in real]}
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
