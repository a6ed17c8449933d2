"""Reliability under faults: the chaos suite's faults under a longer, paced load.

Each fault runs on a fresh ``qwend`` with three ``qwend-sim`` lanes (loopback only) while
clients send a mixed load (text and image, streamed and not) through the router's port
and a public port; the table gives, per fault, the requests sent while it lasted, those
that failed before their first byte or mid-stream, the time until every role's lane was
ready again, the lane processes left after qwend stopped, and the daemon's descriptors
and RSS before and after. The scenarios are tests/chaos/scenarios.py's.

    .venv/bin/python benchmarks/reliability.py                      # every fault, 10 s each
    .venv/bin/python benchmarks/reliability.py --duration 30 --rate 100 --faults kill,storm50
    .venv/bin/python benchmarks/reliability.py --list

Exit status 1 when a fault breaks what the chaos suite requires (see ``failures``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

# The scenarios live with the tests (one copy of each fault): run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.harness import TABLE_HEADER, table_line
from tests.chaos.scenarios import SCENARIOS, Window, failures, run_scenario

KEYS = {
    "kill": "kill -9 of a lane",
    "stop": "SIGSTOP/SIGCONT of a lane",
    "storm100": "500 storm, 100 % on one lane",
    "storm50": "500 storm, 50 % on one lane",
    "stall": "mid-stream stall on one lane",
    "npusmi": "npu-smi hanging, lane killed",
    "reload": "reload loop, valid and broken",
    "promote": "promotion and rollback",
    "restart": "qwend SIGKILL and restart",
    "squat": "port squatter while a lane restarts",
    "slowloris": "slowloris on the public port",
    "soak": "many requests, no fault",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each fault lasts")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s over all clients (0: unpaced)"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument(
        "--faults", default="all", help=f"comma-separated, of: {', '.join(KEYS)} (default all)"
    )
    parser.add_argument("--soak", type=int, default=10_000, help="requests of the soak")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    chosen = list(KEYS) if args.faults == "all" else args.faults.split(",")
    unknown = [k for k in chosen if k not in KEYS]
    if unknown:
        print(f"unknown faults {unknown}; known: {', '.join(KEYS)}", file=sys.stderr)
        return 2
    window = Window(hold_s=args.duration, soak_requests=args.soak)
    rows = []
    started = time.monotonic()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, duration {args.duration}s per fault, "
        f"rate {args.rate or 'unpaced'}, {args.clients} clients\n"
    )
    print(TABLE_HEADER)
    bad = 0
    for key in chosen:
        with tempfile.TemporaryDirectory(prefix="qwend-reliability-") as tmp:
            row = await run_scenario(
                Path(tmp),
                SCENARIOS[KEYS[key]],
                window=window,
                clients=args.clients,
                rate=args.rate or None,
            )
        rows.append(row)
        print(table_line(row), flush=True)
        for problem in failures(row):
            bad += 1
            print(f"  ! {problem}", file=sys.stderr)
    print(f"\n{len(rows)} faults in {time.monotonic() - started:.0f}s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for key, name in KEYS.items():
            print(f"{key:10} {name}")
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
