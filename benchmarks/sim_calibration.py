"""Does one sim lane reproduce the seed's 910A latency table?

Starts a real ``qwend-sim serve`` lane per variant, replays the seed's cases over
HTTP with the same scenarios and runner as ``qwenctl bench`` (``qwend.bench``) and
prints measured walls next to the seed's, with the error. A developer tool for the
simulator's constants (it starts its own lanes); operators run ``qwenctl bench``
against a deployment. The required cases (single requests and concurrency_8) must be
within 10%; the others are reported for information.

    .venv/bin/python benchmarks/sim_calibration.py                 # real time, ~90 s
    .venv/bin/python benchmarks/sim_calibration.py --time-scale 4  # 4x faster, rescaled

Exit status 0 when every required case is within the tolerance, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from qwend.bench.results import BenchResult, Metadata
from qwend.bench.runner import RunSettings, run_scenarios
from qwend.bench.scenarios import SEED_FIGURES, resolve

MODEL = "qwen3.5-9b"
TOLERANCE = 0.10
SEED = {v: SEED_FIGURES[v] for v in ("baseline", "recurrent_v2", "v3")}
"""The seed's 910A single-lane table (seconds); v3 has ranges, the midpoint is compared."""
REQUIRED = ("text_8", "text_32", "text_64", "mm_8", "stream_text_8", "concurrency_8")


@dataclass(frozen=True)
class Row:
    """One measured case."""

    variant: str
    case: str
    seed_s: float
    measured_s: float
    required: bool

    @property
    def error(self) -> float:
        """Relative error against the seed."""
        return (self.measured_s - self.seed_s) / self.seed_s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_lane(variant: str, port: int, scale: float, state_dir: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "qwend-sim"
    argv = [
        str(exe), "serve", "--port", str(port), "--served-model-name", MODEL,
        "--variant", variant, "--lane-name", f"calib-{variant}", "--startup-delay", "0",
        "--time-scale", str(scale), "--log-level", "warning",
    ]  # fmt: skip
    env = dict(os.environ, QWEND_SIM_STATE_DIR=state_dir, ASCEND_RT_VISIBLE_DEVICES="0")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"sim lane for {variant} did not start on port {port}")


async def measure_variant(variant: str, scale: float, repeat: int, state_dir: str) -> list[Row]:
    """Measure every case of ``variant`` on a fresh lane (median of ``repeat`` runs)."""
    port = _free_port()
    proc = _start_lane(variant, port, scale, state_dir)
    settings = RunSettings(f"http://127.0.0.1:{port}", MODEL, repeat, scale)
    try:
        runs = await run_scenarios(resolve(["seed-lane"]), settings)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result = BenchResult(
        variant, Metadata(variant, settings.base_url, 0, "", "", MODEL), tuple(runs)
    )
    rows = []
    for m in result.metrics():
        low, high = SEED[variant][m.case]
        rows.append(Row(variant, m.case, (low + high) / 2, m.wall.median, m.case in REQUIRED))
    return rows


def render(rows: list[Row]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| variant | case | seed (s) | sim (s) | error | required |",
        "| --- | --- | ---: | ---: | ---: | :---: |",
    ]
    for r in rows:
        flag = ("ok" if abs(r.error) <= TOLERANCE else "FAIL") if r.required else "-"
        lines.append(
            f"| {r.variant} | {r.case} | {r.seed_s:.3f} | {r.measured_s:.3f} "
            f"| {r.error:+.1%} | {flag} |"
        )
    return "\n".join(lines)


async def run(variants: list[str], scale: float, repeat: int) -> list[Row]:
    """Measure ``variants`` one after the other."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qwend-sim-calib-") as state_dir:
        for variant in variants:
            rows += await measure_variant(variant, scale, repeat, state_dir)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(SEED), choices=list(SEED))
    parser.add_argument("--time-scale", type=float, default=1.0, help="run faster, rescale")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.variants, args.time_scale, args.repeat))
    print(f"time scale {args.time_scale:g} (measured walls multiplied back), repeat {args.repeat}")
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2) + "\n")
    failed = [r for r in rows if r.required and abs(r.error) > TOLERANCE]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
