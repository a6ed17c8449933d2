"""What history compression adds to a console or public request, with its I/O.

``qwend.compress`` alone is measured by ``compression.py``. This measures the whole
step a request goes through before it is forwarded (``qwend.public.history``): the
lane's ``/v1/models`` (context length), ``/tokenize`` of the messages not counted
yet, ``compress_history`` with the conversation's previous result, the rewritten
body. A real ``qwend-sim`` lane answers the HTTP calls; the router's pooled client
session makes them, as in the daemon.

Cases, for conversations of 100 and 500 turns (English, about 90 tokens a turn):
``cold`` (a new compressor: every message tokenized, no previous result) and
``warm`` (the same conversation one turn longer each request, as a chat goes on:
only the new turn is tokenized, the previous result is reused). Reported: p50/p95
milliseconds, tokens before and after, the most prompt tokens the lane itself counts
for any compressed request (its ``/tokenize``; the budget is 4000), and the share of
the previous request's messages (its recent turns aside) the next one repeats as a
common prefix (what a lane's prefix cache can reuse).

    .venv/bin/python benchmarks/console_history.py              # about 30 s
    .venv/bin/python benchmarks/console_history.py --turns 100 --warm 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

# The sim lane helper lives with the tests: run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwend.config.model import PublicConfig, RouterConfig
from qwend.public.history import HistoryCompressor, Outcome
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.simlane import start_sim_lane

TOPICS = ("scheduler", "kv cache", "npu memory", "tokenizer", "router", "promotion", "driver")
BUDGET = 4000


def conversation(turns: int) -> list[dict[str, Any]]:
    """``turns`` alternating user/assistant messages of eight distinct sentences each."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        topic = TOPICS[i % len(TOPICS)]
        text = " ".join(
            f"In step {i}.{j} the {topic} team measured {i * 7 + j} units on lane {j % 3}."
            for j in range(8)
        )
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return messages


async def lane_count(upstream: Any, lane_url: str, messages: list[dict[str, Any]]) -> int:
    """What the lane itself counts for ``messages`` (its ``/tokenize`` with the template)."""
    async with upstream.session.post(lane_url + "/tokenize", json={"messages": messages}) as r:
        return int((await r.json())["count"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stable_share(before: Outcome, after: Outcome) -> float:
    """Share of the earlier request's messages (its recent turns aside) that the later one
    repeats as a common prefix: what a lane's prefix cache can reuse."""
    old = before.doc["messages"][:-4]
    common = 0
    for a, b in zip(old, after.doc["messages"], strict=False):
        if a != b:
            break
        common += 1
    return common / len(old) if old else 1.0


async def measure(turns: int, cold: int, warm: int, lane_url: str) -> dict[str, object]:
    table = LaneTable((RoutableLane("stable", "stable", "v3", lane_url, True, False, True, True),))
    app = make_router_app(RouterConfig(), table)
    runner = web.AppRunner(app)
    await runner.setup()  # opens the router's pooled upstream session
    try:
        upstream = app[ROUTER_KEY].forwarding.upstream
        runtimes = app[ROUTER_KEY].forwarding.slots.runtimes()
        public = PublicConfig(history_budget_tokens=BUDGET, keep_recent_turns=4)
        cold_ms: list[float] = []
        counted: list[int] = []
        outcome: Outcome | None = None
        for _ in range(cold):
            history = HistoryCompressor(upstream, public)
            doc = {"messages": conversation(turns), "max_tokens": 64}
            start = time.perf_counter()
            outcome = await history.apply(doc, runtimes, mode=None, enabled=True, session="c")
            cold_ms.append((time.perf_counter() - start) * 1000)
            assert isinstance(outcome, Outcome)
            counted.append(await lane_count(upstream, lane_url, outcome.doc["messages"]))
        assert outcome is not None
        history = HistoryCompressor(upstream, public)
        warm_ms: list[float] = []
        shares: list[float] = []
        last: Outcome | None = None
        for k in range(warm + 1):
            doc = {"messages": conversation(turns + k), "max_tokens": 64}
            start = time.perf_counter()
            now = await history.apply(doc, runtimes, mode=None, enabled=True, session="w")
            elapsed = (time.perf_counter() - start) * 1000
            assert isinstance(now, Outcome)
            counted.append(await lane_count(upstream, lane_url, now.doc["messages"]))
            if k:  # the first one is cold
                warm_ms.append(elapsed)
                assert last is not None
                shares.append(stable_share(last, now))
            last = now
        return {
            "turns": turns,
            "tokens_before": outcome.result.tokens_before,
            "tokens_after": outcome.result.tokens_after,
            "cold_p50": statistics.median(cold_ms),
            "cold_p95": pct(cold_ms, 0.95),
            "warm_p50": statistics.median(warm_ms),
            "warm_p95": pct(warm_ms, 0.95),
            "stable": statistics.mean(shares),
            "lane_max": max(counted),
        }
    finally:
        await runner.cleanup()


async def main_async(args: argparse.Namespace, lane_url: str) -> None:
    print(
        f"budget {BUDGET} tokens, keep_recent_turns 4, /tokenize of a qwend-sim lane\n\n"
        "| turns | tokens before → after | cold p50 / p95 (ms) | warm p50 / p95 (ms) "
        "| lane's count, most | common prefix with the previous request |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for turns in args.turns:
        r = await measure(turns, args.cold, args.warm, lane_url)
        print(
            f"| {r['turns']} | {r['tokens_before']} → {r['tokens_after']} "
            f"| {r['cold_p50']:.1f} / {r['cold_p95']:.1f} "
            f"| {r['warm_p50']:.1f} / {r['warm_p95']:.1f} | {r['lane_max']} "
            f"| {100 * float(r['stable']):.1f} % |"  # type: ignore[arg-type]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--cold", type=int, default=5, help="cold requests per size")
    parser.add_argument("--warm", type=int, default=20, help="warm requests per size")
    args = parser.parse_args()
    state = Path("/tmp") / f"qwend-bench-history-{time.time_ns()}"
    state.mkdir()
    lane = start_sim_lane(state_dir=state, time_scale=100)
    try:
        asyncio.run(main_async(args, lane.base_url))
    finally:
        lane.stop()


if __name__ == "__main__":
    main()
