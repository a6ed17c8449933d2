"""How fast qwend-sim's Ray mode reacts: ready after the last node joins, and a lost node.

Real processes on loopback, 2 NPUs per node, heartbeat 0.1 s and heartbeat timeout 1.5 s
(the test settings), model load 0 s so only the Ray handshake is measured. For each
cluster size (head + W workers) the engine asks for TP 2 x PP (W + 1) NPUs, so it can only
be placed once the last worker has joined:

- ``join -> serving``: from the head's "Ray node joined" of the last worker to the
  engine's "serving" (log timestamps: placement, then the engine's bind);
- ``start -> /health``: from starting the last worker's process to the engine's first
  /health 200 (what a supervisor polling the engine sees, process start included);
- ``kill -> exit``: SIGKILL of a worker holding workers of the engine to the engine's exit;
- ``stop -> exit``: SIGSTOP of such a worker (silence, no FIN) to the engine's exit, which
  the heartbeat timeout (1.5 s) bounds from below.

    .venv/bin/python benchmarks/sim_ray.py            # about a minute
    .venv/bin/python benchmarks/sim_ray.py --runs 9 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# The rig (sim processes) lives with the tests: run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.simlane import SimLaneProcess, free_port, start_sim_lane
from tests.support.simray import FAST_LINK, RayNodeProcess, start_ray_node


def _stamp(log: str, event: str) -> float:
    """Epoch seconds of the first JSON log line with ``event``."""
    for line in log.splitlines():
        if f'"event": "{event}"' in line:
            moment = json.loads(line)["timestamp"].replace("Z", "+00:00")
            return datetime.datetime.fromisoformat(moment).timestamp()
    raise RuntimeError(f"no {event!r} in the log")


def _healthy(lane: SimLaneProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{lane.base_url}/health", timeout=1) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def _wait(predicate: object, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.002)
    return time.monotonic()


def one_run(base: Path, workers: int, fault: str | None) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(dir=base))
    port = free_port()
    nodes: list[RayNodeProcess] = []
    engine: SimLaneProcess | None = None
    try:
        nodes.append(start_ray_node(state, "head", ["--head", "--port", str(port), "--num-gpus=2"]))
        engine = start_sim_lane(
            state_dir=state,
            lane_name="engine",
            npus=None,
            wait=False,
            env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"},
            extra=[
                "--distributed-executor-backend=ray",
                "--tensor-parallel-size=2",
                f"--pipeline-parallel-size={workers + 1}",
                *FAST_LINK,
            ],
        )
        flags = [f"--address=127.0.0.1:{port}", "--num-gpus=2"]
        for i in range(workers):
            if i == workers - 1:
                _wait(lambda: "waiting for the Ray cluster" in engine.log_text())
            started = time.monotonic()
            nodes.append(
                start_ray_node(state, f"w{i}", [*flags, f"--node-ip-address=127.0.0.{i + 2}"])
            )
        healthy = _wait(lambda: _healthy(engine))
        _wait(lambda: '"event": "serving"' in engine.log_text())
        joins = [ln for ln in nodes[0].log_text().splitlines() if '"Ray node joined"' in ln]
        joined = _stamp(joins[-1], "Ray node joined")
        result = {
            "join -> serving": (_stamp(engine.log_text(), "serving") - joined) * 1000,
            "start -> /health": (healthy - started) * 1000,
        }
        if fault is not None:
            victim = nodes[-1]
            hit = time.monotonic()
            victim.proc.send_signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            engine.wait_exit(timeout=30)
            result[f"{fault} -> exit"] = (time.monotonic() - hit) * 1000
        return result
    finally:
        if engine is not None:
            engine.stop()
        for node in reversed(nodes):
            node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="qwend-sim-ray-bench-"))
    print("| nodes | NPUs | metric | median ms | p90 ms | runs |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for workers in args.workers:
        samples: dict[str, list[float]] = {}
        for run in range(args.runs):
            fault = ("kill", "stop")[run % 2]
            for key, value in one_run(base, workers, fault).items():
                samples.setdefault(key, []).append(value)
        for key, values in samples.items():
            p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
            print(
                f"| {workers + 1} | {2 * (workers + 1)} | {key} | {statistics.median(values):.0f}"
                f" | {p90:.0f} | {len(values)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
