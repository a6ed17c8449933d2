"""How fast a lane group restarts as a unit when a follower dies (two supervisors in one
process, the peer link in process, real qwend-sim members on loopback).

Two layouts, each measured ``--runs`` times from one SIGKILL of the follower's process:

- ``dp``: vLLM's multi-node data parallel (the sim's DP leader and ``--headless`` rank);
  the leader's lane is the one routed;
- ``ray``: a Ray cluster (the sim's ``ray start --block`` head and worker) with an engine
  lane that runs on it (``runs_on``, ``--distributed-executor-backend ray``, TP 2 over the
  two nodes); the engine's lane is the one routed.

Columns (seconds after the kill): ``unrouted`` (the routed lane leaves the lane table),
``group ready`` (every member restarted, in order), ``routed`` (the routed lane serves
again). Lane settings: FAST_HEALTH / FAST_RESTART of the tests (backoff 0.2-0.5 s), sim
startup delay 0.2 s, heartbeat timeouts 1-1.5 s.

    .venv/bin/python benchmarks/lane_groups.py            # about a minute
    .venv/bin/python benchmarks/lane_groups.py --runs 9
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from pathlib import Path

# The rig (supervisors with sim members) lives with the tests: run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qwend.supervisor.coordinator import GroupCoordinator
from qwend.supervisor.group import GroupState
from tests.support.groups import FakeLink, Host, make_hosts, make_ray_hosts
from tests.support.lanescripts.factory import FAST_RESTART

TIMEOUT_S = 60.0
RESTART = replace(FAST_RESTART, crash_loop_limit=1000)
"""The tests' backoff, without their crash loop (each run is a deliberate kill)."""


async def _until(check: Callable[[], bool], what: str) -> float:
    """Poll every 10 ms; the monotonic time ``check`` first held."""
    deadline = time.monotonic() + TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {TIMEOUT_S:g}s")
        await asyncio.sleep(0.01)
    return time.monotonic()


def _restarted(coord: GroupCoordinator, before: int) -> Callable[[], bool]:
    """The group restarted since it had ``before`` restarts, and is ready again."""
    return lambda: coord.machine.restarts > before and coord.machine.state is GroupState.READY


def _routed(host: Host, lane: str) -> bool:
    info = host.table.get(lane)
    return info is not None and info.accepting


async def _measure(
    hosts: dict[str, Host], group: str, routed: str, runs: int
) -> list[tuple[float, float, float]]:
    lead, follow = hosts["node0"], hosts["node1"]
    await lead.sup.start()
    await follow.sup.start()
    coord = GroupCoordinator(lead.sup, lead.sup.config.lane(group), FakeLink(hosts), poll_s=0.2)
    await coord.start()
    task = asyncio.create_task(coord.run())
    rows = []
    try:
        await _until(lambda: _routed(lead, routed), "routed at first")
        for _ in range(runs):
            before = coord.machine.restarts
            victim = follow.sup.snapshot(group).pid
            assert victim is not None
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            out = await _until(lambda: not _routed(lead, routed), "unrouted")
            ready = await _until(_restarted(coord, before), "group ready")
            back = await _until(lambda: _routed(lead, routed), "routed again")
            rows.append((out - killed, ready - killed, back - killed))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await coord.stop("benchmark over")
    return rows


async def _layout(name: str, runs: int) -> list[tuple[float, float, float]]:
    with tempfile.TemporaryDirectory(prefix="qwend-groups-") as tmp:
        made: AsyncGenerator[dict[str, Host], None]
        if name == "dp":
            made, group, routed = make_hosts(Path(tmp), restart=RESTART), "big", "big"
        else:
            made = make_ray_hosts(Path(tmp), sim_ray=True, restart=RESTART)
            group, routed = "ray", "engine"
        rows: list[tuple[float, float, float]] = []
        async for hosts in made:  # to its end: its cleanup shuts the supervisors down
            rows = await _measure(hosts, group, routed, runs)
        return rows


def _line(name: str, rows: list[tuple[float, float, float]]) -> str:
    cells = []
    for index in range(3):
        values = [row[index] for row in rows]
        cells.append(f"{statistics.median(values):6.2f} ({max(values):5.2f})")
    return f"| {name:4} | {len(rows)} | " + " | ".join(cells) + " |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lines = [
        "| layout | runs | unrouted, median (max) | group ready | routed again |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("dp", "ray"):
        lines.append(_line(name, await _layout(name, args.runs)))
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
