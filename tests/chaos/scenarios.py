"""The faults of the chaos suite, each run under the rig's load (tests and benchmark share them).

A scenario starts its own daemon (``chaos_daemon``) on its topology, warms the load up,
takes the daemon's descriptors and RSS as the baseline, injects the fault for ``window.hold_s``
seconds of load (a fault's duration, not a wait for something), heals it, waits for every
role's active lane to be ready again, stops the daemon and checks that no lane process
is left. ``problems`` holds what a scenario checks beyond the common figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from qwend.api.client import PromotionItem
from qwend.api.messages import PromotionOutcome, PromotionRecord
from qwend.errors import ControlError
from qwend.sim.cli import HANG_FILE
from tests.chaos.harness import (
    DEFAULT_LANES,
    FD_TOLERANCE,
    REQUEST_KINDS,
    RSS_TOLERANCE_BYTES,
    LaneSpec,
    Load,
    Rig,
    Row,
    Tally,
    Topology,
    chaos_daemon,
    lane_group,
    wait_gone,
)
from tests.support.daemonproc import run_daemon
from tests.support.lanescripts.factory import squatter_argv, wait_json
from tests.support.polling import SLACK_S

ROWS: list[Row] = []
"""Every row measured in this process (the chaos conftest prints them)."""

STREAM_IDLE_S = 2.0
"""The rig's ``stream_idle_timeout_s`` (harness.ROUTER_SETTINGS)."""

WARM_UP_REQUESTS = 40
AFTER_REQUESTS = 40
"""Requests served after recovery before the row is taken (the lanes really serve)."""


@dataclass
class Outcome:
    """What a scenario's injection found beyond the load's tally."""

    problems: list[str] = field(default_factory=list)
    row: Row | None = None
    """The row, when the scenario took it itself (qwend restart: from the second daemon)."""
    extra_orphans: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """How long a fault lasts under load, and how many requests the soak sends."""

    hold_s: float = 2.5
    soak_requests: int = 10_000


Inject = Callable[[Rig, Load, Tally, Window], Awaitable[Outcome]]


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Inject
    lanes: tuple[LaneSpec, ...] = DEFAULT_LANES
    monitor_hang_file: bool = False
    router: tuple[tuple[str, object], ...] = ()
    streams_only: bool = False
    """Only streamed requests in the load (a stalled stream is what the scenario measures)."""
    max_stream_s: float | None = None
    """Longest any stream of the window may take (stalls: the idle timeout plus slack)."""


async def run_scenario(
    base: Path,
    scenario: Scenario,
    *,
    window: Window = Window(),
    clients: int = 4,
    rate: float | None = None,
) -> Row:
    """Run one scenario on a fresh daemon; its row (also appended to ``ROWS``)."""
    topology = Topology(
        lanes=scenario.lanes,
        router=dict(scenario.router),
        monitor_hang_file=scenario.monitor_hang_file,
    )
    async with chaos_daemon(base, topology) as rig:
        kinds = [k for k in REQUEST_KINDS if k[1]] if scenario.streams_only else REQUEST_KINDS
        async with rig.load(clients, kinds, rate) as load:
            await load.requests_at_least(WARM_UP_REQUESTS)
            rig.baseline = rig.resources()
            tally = load.begin(scenario.name)
            rig.mark_fault()
            outcome = await scenario.inject(rig, load, tally, window)
            row = outcome.row or await rig.fault_done(tally, load, after=AFTER_REQUESTS)
        orphans = await rig.stop_daemon()
    problems = list(outcome.problems)
    if scenario.max_stream_s is not None and row.longest_stream_s > scenario.max_stream_s:
        problems.append(
            f"a stream took {row.longest_stream_s:.1f}s (allowed {scenario.max_stream_s:.0f}s)"
        )
    row = replace(row, orphans=len(orphans) + len(outcome.extra_orphans), problems=tuple(problems))
    ROWS.append(row)
    return row


def failures(row: Row) -> list[str]:
    """What the chaos suite requires of every row, as messages (empty: passed)."""
    found = list(row.problems)
    if row.failed_before_first_byte:
        found.append(
            f"{row.failed_before_first_byte} of {row.requests} requests failed before the "
            f"first byte while other lanes were ready; statuses {dict(row.statuses)}; "
            f"first: {list(row.samples)}"
        )
    if row.orphans:
        found.append(f"{row.orphans} lane processes outlived the daemon")
    if row.fds_after > row.fds_before + FD_TOLERANCE:
        found.append(f"descriptors grew from {row.fds_before} to {row.fds_after}")
    if (row.rss_after_mb - row.rss_before_mb) * 2**20 > RSS_TOLERANCE_BYTES:
        found.append(f"RSS grew from {row.rss_before_mb:.0f} to {row.rss_after_mb:.0f} MB")
    return found


# ---------------------------------------------------------------- the faults


async def kill_lane(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """kill -9 of lane a's process group (the lane and anything it started)."""
    infos = await rig.lanes()
    os.killpg(lane_group(infos["a"]), signal.SIGKILL)
    await asyncio.sleep(window.hold_s)  # load runs on the other lanes meanwhile
    return Outcome()


async def stop_lane(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """SIGSTOP lane a for ``window.hold_s`` (and at least 4 s: past its probes), then SIGCONT."""
    infos = await rig.lanes()
    group = lane_group(infos["a"])
    os.killpg(group, signal.SIGSTOP)
    try:
        await asyncio.sleep(max(window.hold_s, 4.0))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGCONT)
        rig.healed()
    return Outcome()


async def under_load(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """The fault is in the lane's flags from its start: just run the load."""
    await asyncio.sleep(window.hold_s)
    await load.requests_at_least(tally.requests + 100)
    return Outcome()


async def stalled_streams(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """Lane a is reloaded to stall every request after 2 tokens; then healed by a reload.

    A stalled stream must end soon (the rig's stream idle timeout, 2 s); nothing may fail
    before its first byte. (A non-streamed request on the stalled lane waits: its lane
    sends nothing until it is done, so silence is no sign of a stall.)
    """
    outcome = Outcome()
    async with rig.daemon.client() as client:
        rig.rewrite_lane("a", sim_flags=("--stall-after-tokens", "2"))
        if not (await client.reload()).ok:
            outcome.problems.append("the reload into the stalling lane was refused")
        await rig.all_ready()
        # Longer than a request may take: a stall that is not cut short shows.
        await asyncio.sleep(max(window.hold_s, STREAM_IDLE_S + SLACK_S + 2))
        await load.requests_at_least(tally.requests + 60, timeout=60)
        rig.rewrite_lane("a", sim_flags=())
        rig.healed()
        if not (await client.reload()).ok:
            outcome.problems.append("the reload healing the lane was refused")
    return outcome


async def npu_smi_hang(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """npu-smi hangs, then lane a is killed: it must still restart (npu-smi is timed out)."""
    hang = rig.sim_state / HANG_FILE
    hang.touch()
    try:
        infos = await rig.lanes()
        os.killpg(lane_group(infos["a"]), signal.SIGKILL)
        await asyncio.sleep(window.hold_s)
        await rig.all_ready(timeout=60)
    finally:
        hang.unlink(missing_ok=True)
    return Outcome()


async def reload_loop(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """Six reloads: broken (refused, lanes untouched) and valid (lane c's flags change)."""
    outcome = Outcome()
    broken = rig.config.parent / "lanes.d" / "zz-broken.toml"
    async with rig.daemon.client() as client:
        for i in range(6):
            if i % 2 == 0:
                broken.write_text('[lane]\nname = "broken"\nnpus = "not a list"\n')
                try:
                    response = await client.reload()
                    refused = not response.ok
                except ControlError:
                    refused = True
                broken.unlink()
                if not refused:
                    outcome.problems.append(f"reload {i}: a broken lane file was accepted")
            else:
                seqs = "16" if i % 4 == 1 else "32"
                rig.rewrite_lane("c", sim_flags=("--max-num-seqs", seqs))
                rig.healed()  # recovery: from the last reload that restarts a lane
                response = await client.reload()
                if not response.ok:
                    outcome.problems.append(f"reload {i} refused: {response.errors}")
            await asyncio.sleep(window.hold_s / 6)  # load between reloads
            await rig.all_ready()
    return outcome


async def promote_and_roll_back(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """Promote standby a2 over a (blue/green) under load, then roll role alpha back."""
    outcome = Outcome()
    async with rig.daemon.client() as client:
        promoted = await _record(client.promote("a2"))
        if promoted.outcome is not PromotionOutcome.PROMOTED:
            outcome.problems.append(f"promotion of a2: {promoted}")
        await asyncio.sleep(window.hold_s / 2)
        rolled = await _record(client.rollback("alpha"))
        if rolled.outcome is PromotionOutcome.FAILED:
            outcome.problems.append(f"rollback of alpha: {rolled}")
    await asyncio.sleep(window.hold_s / 2)
    infos = await rig.all_ready()
    if not infos["a"].active:
        outcome.problems.append(f"after the rollback lane a is not active: {infos['a']}")
    return outcome


async def _record(stream: AsyncIterator[PromotionItem]) -> PromotionRecord:
    async for item in stream:
        if isinstance(item, PromotionRecord):
            return item
    raise AssertionError("the promotion stream ended without a record")


async def restart_daemon(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """SIGKILL qwend: its lanes must die with it (foreground); a new qwend serves again."""
    outcome = Outcome()
    await rig.lanes()
    rig.daemon.descendants()
    first = rig.daemon
    first.send(signal.SIGKILL)
    await first.wait_exit(SLACK_S)
    outcome.extra_orphans = await wait_gone(rig.lane_pids | first.known_pids, SLACK_S)
    down = load.tally
    async with run_daemon(rig.config, env=rig.env) as second:
        rig.daemon = second
        await rig.all_ready()
        # Requests sent while no qwend listened failed (nothing was ready): reported in the
        # name; the row counts from the moment the new daemon's lanes are ready.
        after = load.begin(f"qwend SIGKILL and restart ({down.requests} sent while down)")
        await asyncio.sleep(window.hold_s)
        outcome.row = await rig.fault_done(after, load, after=AFTER_REQUESTS)
        outcome.extra_orphans += await rig.stop_daemon()
    return outcome


async def squat_port(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """kill -9 of lane a and a squatter on its port before it is back; then the squatter goes."""
    outcome = Outcome()
    infos = await rig.lanes()
    port = infos["a"].port
    os.killpg(lane_group(infos["a"]), signal.SIGKILL)
    await wait_gone({infos["a"].pid or 0}, SLACK_S)
    squatter = await asyncio.create_subprocess_exec(
        *squatter_argv(port, "Qwen3.5-9B"),
        stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await wait_json(f"http://127.0.0.1:{port}/squatter")
        await asyncio.sleep(max(window.hold_s, 3.0))  # probes see the squatter meanwhile
        captured = await wait_json(f"http://127.0.0.1:{port}/squatter")
        if captured != {"captured": 0}:
            outcome.problems.append(f"the squatter captured requests: {captured}")
    finally:
        squatter.kill()
        await squatter.wait()
        rig.healed()
    return outcome


async def slowloris(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """300 connections to the public port sending a header line every 0.5 s, never finishing.

    qwend must close them itself (its header timeout, 2 s in the rig) while serving the load.
    """
    outcome = Outcome()
    count, bound = 300, 2.0 + SLACK_S
    started = time.monotonic()
    results = await asyncio.gather(
        *(_slow_client(rig.public_port, bound) for _ in range(count)), return_exceptions=True
    )
    rig.healed()
    held = [r for r in results if r is not True]
    if held:
        outcome.problems.append(
            f"{len(held)} of {count} slow-header connections were still open after "
            f"{time.monotonic() - started:.0f}s (header timeout 2 s)"
        )
    return outcome


async def _slow_client(port: int, bound: float) -> bool:
    """True when qwend closed (or answered) the connection within ``bound`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        deadline = time.monotonic() + bound
        n = 0
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(1024), 0.5)
            except TimeoutError:
                n += 1
                writer.write(f"X-Slow-{n}: still sending\r\n".encode())
                try:
                    await writer.drain()
                except ConnectionError:
                    return True
                continue
            except ConnectionError:
                return True
            del data  # EOF or an answer (408): qwend dealt with it
            return True
        return False
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def soak(rig: Rig, load: Load, tally: Tally, window: Window) -> Outcome:
    """No fault: ``window.soak_requests`` requests; descriptors and RSS must stay flat."""
    await load.requests_at_least(window.soak_requests, timeout=max(600, window.soak_requests / 5))
    rig.mark_fault()  # nothing to recover from: the lanes are watched from here on
    return Outcome()


def _with_flags(name: str, *flags: str) -> tuple[LaneSpec, ...]:
    return tuple(replace(s, sim_flags=flags) if s.name == name else s for s in DEFAULT_LANES)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("kill -9 of a lane", kill_lane),
        Scenario("SIGSTOP/SIGCONT of a lane", stop_lane),
        Scenario(
            "500 storm, 100 % on one lane",
            under_load,
            lanes=_with_flags("a", "--error-rate", "1.0"),
        ),
        Scenario(
            "500 storm, 50 % on one lane",
            under_load,
            lanes=_with_flags("a", "--error-rate", "0.5"),
        ),
        Scenario(
            "mid-stream stall on one lane",
            stalled_streams,
            router=(("request_timeout_s", 30),),
            streams_only=True,
            max_stream_s=STREAM_IDLE_S + SLACK_S,
        ),
        Scenario("npu-smi hanging, lane killed", npu_smi_hang, monitor_hang_file=True),
        Scenario("reload loop, valid and broken", reload_loop),
        Scenario(
            "promotion and rollback",
            promote_and_roll_back,
            lanes=(*DEFAULT_LANES, LaneSpec("a2", "alpha", image=True, standby=True)),
        ),
        Scenario("qwend SIGKILL and restart", restart_daemon),
        Scenario(
            "port squatter while a lane restarts",
            squat_port,
            lanes=tuple(
                replace(s, startup_delay_s=1.0) if s.name == "a" else s for s in DEFAULT_LANES
            ),
        ),
        Scenario("slowloris on the public port", slowloris),
        Scenario("many requests, no fault", soak),
    )
}
