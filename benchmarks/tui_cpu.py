"""What a live view costs: qwen-tui's own CPU, and the daemon's CPU per connected watcher.

A fresh ``qwend`` runs three ``qwend-sim`` lanes and the fake npu-smi (loopback only)
under a paced mixed load. Then, in turn, it is watched by nobody, by real ``qwen-tui``
processes on pseudo-terminals (200x50), and by headless watchers of two kinds:
``stream`` (what qwen-tui does now: the stats stream plus the event stream without
periodic stats) and ``poll`` (what it did before: ``status`` and ``npus`` every second).
Each phase is measured over several windows after a warm-up; the table gives medians,
in percent of one core, of the daemon process and of each qwen-tui.

    .venv/bin/python benchmarks/tui_cpu.py                       # about 4 minutes
    .venv/bin/python benchmarks/tui_cpu.py --window 10 --repeat 3 --tuis 1,3 --rate 6

Exit status 1 when qwen-tui takes more than 2 % of a core, or the daemon more than 1 %
of a core per connected qwen-tui.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import platform
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

# The rig (daemon, lanes, load) lives with the tests: run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwend.api.client import ControlClient
from tests.chaos.harness import Load, Topology, chaos_daemon

TUI_LIMIT_PCT = 2.0
DAEMON_PER_TUI_LIMIT_PCT = 1.0


@dataclass(frozen=True)
class Phase:
    name: str
    daemon_pct: float
    tui_pct: float | None
    watchers: int


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def measure(pids: Sequence[int], window: float, repeat: int) -> list[float]:
    """Median CPU (% of a core) of each PID over ``repeat`` windows of ``window`` seconds."""
    procs = [psutil.Process(pid) for pid in pids]
    samples: list[list[float]] = [[] for _ in procs]
    for _ in range(repeat):
        before = [cpu_seconds(p) for p in procs]
        started = time.monotonic()
        await asyncio.sleep(window)
        wall = time.monotonic() - started
        for i, p in enumerate(procs):
            samples[i].append(100.0 * (cpu_seconds(p) - before[i]) / wall)
    return [statistics.median(s) for s in samples]


@contextlib.asynccontextmanager
async def tuis(count: int, socket: Path, refresh: float) -> AsyncIterator[list[int]]:
    """``count`` qwen-tui processes, each on its own 200x50 pseudo-terminal, output drained."""
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    loop = asyncio.get_running_loop()
    exe = Path(sys.executable).parent / "qwen-tui"
    try:
        for _ in range(count):
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
            env = {**os.environ, "TERM": "xterm-256color", "QWEND_SOCKET": str(socket)}
            # Popen, not asyncio's: the child gets a terminal of its own and starting is instant.
            proc = subprocess.Popen(  # noqa: ASYNC220
                [str(exe), "--refresh", str(refresh)],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
            )
            os.close(slave)
            os.set_blocking(master, False)
            # A terminal that is never read blocks the TUI: read and drop what it draws.
            loop.add_reader(master, _drain(master))
            started.append((proc, master))
        yield [proc.pid for proc, _ in started]
    finally:
        for proc, master in started:
            loop.remove_reader(master)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(master)


def _drain(fd: int) -> Callable[[], None]:
    def read() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 65536):
                pass

    return read


async def stream_watcher(socket: Path, refresh: float) -> None:
    """What qwen-tui asks of the daemon now."""
    async with ControlClient(socket) as stats, ControlClient(socket) as events:

        async def follow_events() -> None:
            async for _ in events.events(stats_interval_s=0):
                pass

        task = asyncio.create_task(follow_events())
        try:
            async for _ in stats.stats_stream(refresh):
                pass
        finally:
            task.cancel()


async def poll_watcher(socket: Path, refresh: float) -> None:
    """What qwen-tui asked of the daemon before the stats stream: a full poll per tick."""
    async with ControlClient(socket) as client:
        while True:
            await client.status()
            await client.npus()
            await asyncio.sleep(refresh)


@contextlib.asynccontextmanager
async def watchers(
    kind: Callable[[Path, float], Coroutine[object, object, None]],
    count: int,
    socket: Path,
    refresh: float,
) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(kind(socket, refresh)) for _ in range(count)]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.tuis.split(",")]
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="tui-cpu-") as tmp:
        async with chaos_daemon(Path(tmp), Topology(monitor_hang_file=True)) as rig:
            socket = rig.daemon.control_socket
            load = Load(urls=rig.urls[:1], clients=args.clients, rate=args.rate)
            load_task = asyncio.create_task(_run_load(load))
            try:
                await asyncio.sleep(args.warmup)
                (base,) = await measure([rig.daemon.pid], args.window, args.repeat)
                phases.append(Phase("nobody watching", base, None, 0))
                for n in counts:
                    async with tuis(n, socket, args.refresh) as pids:
                        await asyncio.sleep(args.warmup)
                        daemon_pct, *tui_pcts = await measure(
                            [rig.daemon.pid, *pids], args.window, args.repeat
                        )
                    phases.append(
                        Phase(f"{n} qwen-tui", daemon_pct, statistics.median(tui_pcts), n)
                    )
                for name, kind in (("stream", stream_watcher), ("poll", poll_watcher)):
                    n = args.watchers
                    async with watchers(kind, n, socket, args.refresh):
                        await asyncio.sleep(args.warmup)
                        (daemon_pct,) = await measure([rig.daemon.pid], args.window, args.repeat)
                    phases.append(Phase(f"{n} {name} watchers", daemon_pct, None, n))
            finally:
                load.stopping.set()
                await load_task
    return report(args, phases)


async def _run_load(load: Load) -> None:
    await asyncio.gather(*(load.run_client(i) for i in range(load.clients)))


def report(args: argparse.Namespace, phases: list[Phase]) -> int:
    base = phases[0].daemon_pct
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()},"
        f" {os.cpu_count()} cores, load {args.rate} req/s over {args.clients} clients,"
        f" tick {args.refresh} s, {args.repeat} windows of {args.window} s (medians)\n"
    )
    print("| watchers | daemon CPU % | daemon per watcher % | qwen-tui CPU % |")
    print("| --- | ---: | ---: | ---: |")
    failed = False
    for phase in phases:
        per = (phase.daemon_pct - base) / phase.watchers if phase.watchers else None
        tui = "-" if phase.tui_pct is None else f"{phase.tui_pct:.2f}"
        print(
            f"| {phase.name} | {phase.daemon_pct:.2f} | "
            f"{'-' if per is None else f'{per:+.2f}'} | {tui} |"
        )
        if phase.tui_pct is not None:
            failed |= phase.tui_pct > TUI_LIMIT_PCT
            failed |= per is not None and per > DAEMON_PER_TUI_LIMIT_PCT
    stream = next((p for p in phases if p.name.endswith("stream watchers")), None)
    poll = next((p for p in phases if p.name.endswith("poll watchers")), None)
    if stream and poll and poll.daemon_pct > base:
        ratio = (stream.daemon_pct - base) / (poll.daemon_pct - base)
        print(f"\nstream/poll daemon cost per watcher: {ratio:.2f}")
    if failed:
        print(
            f"\nFAILED: qwen-tui over {TUI_LIMIT_PCT} % of a core, or the daemon over "
            f"{DAEMON_PER_TUI_LIMIT_PCT} % per qwen-tui"
        )
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=15.0, help="seconds per window")
    parser.add_argument("--repeat", type=int, default=3, help="windows per phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--tuis", default="1,3", help="qwen-tui counts to run, comma-separated")
    parser.add_argument("--watchers", type=int, default=10, help="headless watchers per kind")
    parser.add_argument(
        "--refresh", type=float, default=2.0, help="tick of the live view (s), qwen-tui's default"
    )
    parser.add_argument("--rate", type=float, default=8.0, help="requests/s of the load")
    parser.add_argument("--clients", type=int, default=4, help="load clients")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
