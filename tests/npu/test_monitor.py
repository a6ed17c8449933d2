"""NpuMonitor against real fake npu-smi subprocesses: answering, hanging, failing; lanes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import pytest
from structlog.testing import capture_logs

from qwend.config.model import LaneConfig, MonitorConfig
from qwend.errors import NpuSmiError, PreflightError
from qwend.npu.monitor import MAX_OUTPUT_BYTES, NpuMonitor, run_tool
from qwend.npu.parse import parse_info
from tests.support.paths import NPU_SMI_FIXTURES
from tests.support.polling import SLACK_S

FIXTURES = NPU_SMI_FIXTURES

# A fake npu-smi: behaviour chosen by the "mode" file next to it, so a test can
# switch a running monitor between answering, hanging and failing.
FAKE = r"""
import os, sys, time, subprocess
here = os.path.dirname(os.path.abspath(__file__))
mode = open(os.path.join(here, "mode")).read().strip()
with open(os.path.join(here, "runs"), "a") as runs:
    runs.write(f"{mode}\n")
if sys.argv[1:] != ["info"]:
    print("Usage: npu-smi info <watch|proc|-h|-m|-l|-t type> [Options...]")
    sys.exit(2)
if mode == "ok":
    sys.stdout.write(open(os.path.join(here, "table.txt")).read())
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    with open(os.path.join(here, "hung.pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(3600)
elif mode == "flood":
    chunk = "x" * 65536 + "\n"
    for _ in range(int(open(os.path.join(here, "flood")).read())):
        sys.stdout.write(chunk)
elif mode == "fail":
    print("DrvMngGetConsoleLogLevel failed. (g_conLogLevel=3)")
    print("dcmi module initialize failed. ret is -8005")
    sys.exit(1)
else:
    print("something else entirely")
"""


class FakeNpuSmi:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.script = root / "npu-smi"
        self.script.write_text(f"#!{sys.executable}\n{FAKE}")
        self.script.chmod(0o755)
        self.mode("ok")
        self.table(FIXTURES.joinpath("910b4-info-8npu-1proc-npu25.2.0.txt").read_text())

    def mode(self, mode: str) -> None:
        (self.root / "mode").write_text(mode)

    def table(self, text: str) -> None:
        tmp = self.root / "table.tmp"
        tmp.write_text(text)
        tmp.replace(self.root / "table.txt")  # atomic: a poll never sees half a table

    def flood(self, chunks: int) -> None:
        """Print ``chunks`` lines of 64 KiB on the next runs."""
        (self.root / "flood").write_text(str(chunks))
        self.mode("flood")

    def runs(self, mode: str) -> int:
        """How many times the fake was started in ``mode``."""
        path = self.root / "runs"
        return path.read_text().split().count(mode) if path.exists() else 0

    def hung_pids(self) -> list[int]:
        return [int(x) for x in (self.root / "hung.pids").read_text().split()]


@pytest.fixture
def fake(tmp_path: Path) -> FakeNpuSmi:
    return FakeNpuSmi(tmp_path)


def config(fake: FakeNpuSmi, **kw: object) -> MonitorConfig:
    values: dict[str, object] = {"npu_smi": str(fake.script), "interval_s": 0.1, "timeout_s": 5.0}
    values.update(kw)
    return MonitorConfig(**values)  # type: ignore[arg-type]


def lane(name: str, npus: tuple[int, ...]) -> LaneConfig:
    return LaneConfig(
        name=name, role="chat", variant="v3", npus=npus, port=18000, model="m", command=("x",)
    )


def make(
    cfg: MonitorConfig,
    pids: Mapping[str, int] | None = None,
    npus: Mapping[str, tuple[int, ...]] | None = None,
) -> NpuMonitor:
    return NpuMonitor(cfg, lambda: dict(pids or {}), lambda: dict(npus or {}))


async def test_reads_the_table_and_keeps_its_age(fake: FakeNpuSmi) -> None:
    monitor = make(config(fake))
    await monitor.start()
    try:
        async with asyncio.timeout(20):
            view = await monitor.wait_next()
    finally:
        await monitor.stop()
    assert view.enabled and not view.stale and view.error is None
    assert view.reading is not None
    assert len(view.reading.npus) == 8
    assert view.age_s is not None and 0 <= view.age_s < 10
    assert [p.process.pid for p in view.processes] == [472206]
    assert view.processes[0].lane is None


async def test_hanging_npu_smi_never_blocks_the_loop_and_is_killed(fake: FakeNpuSmi) -> None:
    monitor = make(config(fake, timeout_s=0.5, interval_s=0.05))
    assert await monitor.poll() is not None
    fake.mode("hang")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    await monitor.start()
    try:
        async with asyncio.timeout(30):
            view = await monitor.wait_next()
            while view.error is None:  # the first poll may still have been the good one
                view = await monitor.wait_next()
    finally:
        await monitor.stop()
        tick_task.cancel()
    elapsed = time.monotonic() - started
    assert view.stale
    assert view.error is not None and "did not answer within 0.5 s" in view.error
    assert view.reading is not None and len(view.reading.npus) == 8  # last good kept
    # the loop kept running while npu-smi hung: ~1 tick per 10 ms, allow a slow machine
    assert ticks >= elapsed / 0.01 / 5
    # npu-smi and the child it started are gone (the whole process group was killed)
    _, alive = psutil.wait_procs(
        [p for p in map(_proc, fake.hung_pids()) if p is not None], timeout=10
    )
    assert not alive


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


async def test_stop_kills_a_hanging_run(fake: FakeNpuSmi) -> None:
    fake.mode("hang")
    monitor = make(config(fake, timeout_s=60))
    await monitor.start()
    hung = fake.root / "hung.pids"
    async with asyncio.timeout(20):
        while not hung.exists() or not hung.read_text():
            await asyncio.sleep(0.05)  # the script's own start-up; no event to await
    await monitor.stop()
    procs = [p for p in map(_proc, fake.hung_pids()) if p is not None]
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive


async def test_failing_npu_smi_marks_the_view_stale_with_the_reason(fake: FakeNpuSmi) -> None:
    monitor = make(config(fake))
    assert await monitor.poll() is not None
    fake.mode("fail")
    with capture_logs() as logs:
        assert await monitor.poll() is None
    view = monitor.view()
    assert view.stale
    assert view.error is not None
    assert "exited with status 1" in view.error
    assert "dcmi module initialize failed" in view.error
    assert view.reading is not None  # the last good reading stays, with its age
    assert any(e["event"].startswith("npu-smi failed") for e in logs)
    fake.mode("garbage")
    assert await monitor.poll() is None
    assert "something else entirely" in (monitor.view().error or "")
    fake.mode("ok")
    assert await monitor.poll() is not None
    assert not monitor.view().stale


async def test_disabled_or_missing_npu_smi(tmp_path: Path) -> None:
    off = make(MonitorConfig(enabled=False))
    await off.start()
    view = off.view()
    assert not view.enabled and not view.stale
    assert "disabled" in (view.error or "")
    assert await off.pre_start(lane("a", (0,))) is None
    missing = make(MonitorConfig(npu_smi=str(tmp_path / "no-such-npu-smi")))
    await missing.start()
    assert "not found" in (missing.view().error or "")
    started = time.monotonic()
    assert await missing.pre_start(lane("a", (0,))) is None
    assert time.monotonic() - started < SLACK_S  # no release wait (30 s) without npu-smi
    await missing.stop()
    await off.stop()


async def test_run_tool_reports_a_program_that_cannot_start(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("echo hi\n")
    with pytest.raises(Exception, match="cannot run"):
        await run_tool([str(script), "info"], 5)


# ---------------------------------------------------------------- lanes and processes


def table_with(processes: list[tuple[int, int, int, str, int]], sick: int | None = None) -> str:
    """The 8 x 910B4 capture, with our own process rows (npu, chip, pid, name, MB)."""
    text = FIXTURES.joinpath("910b4-info-8npu-1proc-npu25.2.0.txt").read_text()
    head, _, _ = text.partition("| NPU     Chip")
    if sick is not None:
        row = f"| {sick}     910B4               | OK  "
        head = head.replace(row, f"| {sick}     910B4               | Warning")
    width = 96
    lines = [
        "| NPU     Chip              | Process id    | Process name             "
        "| Process memory(MB)      |",
        "+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+",
    ]
    for npu in range(8):
        mine = [p for p in processes if p[0] == npu]
        if not mine:
            lines.append(f"| {f'No running processes found in NPU {npu}':<{width - 1}}|")
        for n, chip, pid, name, mb in mine:
            lines.append(f"| {n:<8}{chip:<18}| {pid:<14}| {name:<25}| {mb:<24}|")
        lines.append("+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+")
    return head + "\n".join(lines) + "\n"


def spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)


@pytest.fixture
def lane_procs() -> Iterator[tuple[int, int, int]]:
    """A lane process with a worker child, and an unrelated process: (lane, worker, other)."""
    lane_proc = spawn(
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    other = spawn("import time; time.sleep(600)")
    assert lane_proc.stdout is not None
    worker = int(lane_proc.stdout.readline())
    try:
        yield lane_proc.pid, worker, other.pid
    finally:
        for pid in (worker, lane_proc.pid, other.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        lane_proc.wait()
        other.wait()
        assert lane_proc.stdout is not None
        lane_proc.stdout.close()
        other.stdout and other.stdout.close()


async def test_processes_are_attributed_to_lanes_through_their_tree(
    fake: FakeNpuSmi, lane_procs: tuple[int, int, int]
) -> None:
    lane_pid, worker, other = lane_procs
    fake.table(
        table_with(
            [
                (0, 0, worker, "python3", 30000),
                (1, 0, other, "leftover", 12000),
                (2, 0, 4_000_001, "", 500),
            ],
            sick=3,
        )
    )
    npus = {"chat": (0, 1), "embed": (2, 3)}
    monitor = make(config(fake), {"chat": lane_pid}, npus)
    assert await monitor.poll() is not None
    view = monitor.view()
    by_pid = {p.process.pid: p for p in view.processes}
    assert by_pid[worker].lane == "chat" and by_pid[worker].foreign_to == ()
    assert by_pid[other].lane is None and by_pid[other].foreign_to == ("chat",)
    assert by_pid[4_000_001].foreign_to == ("embed",)
    assert [p.process.pid for p in view.foreign_on("chat")] == [other]
    assert [p.process.pid for p in view.lane_processes("chat")] == [worker]
    assert view.degraded == {"embed": "NPU 3 health Warning"}
    assert view.lane_npus == npus


async def test_pre_start_waits_for_release(
    fake: FakeNpuSmi, lane_procs: tuple[int, int, int]
) -> None:
    _, _, other = lane_procs
    fake.table(table_with([(0, 0, other, "old-vllm", 30000)]))
    monitor = make(config(fake, release_wait_s=30.0, interval_s=0.1), {}, {"chat": (0,)})
    task = asyncio.create_task(monitor.pre_start(lane("chat", (0,))))
    async with asyncio.timeout(20):
        view = await monitor.wait_next()  # pre-start's first look: NPU 0 is held
    assert view.foreign_on("chat")
    assert not task.done()
    fake.table(table_with([]))  # the old process let go of its HBM
    started = time.monotonic()
    async with asyncio.timeout(20):
        assert await task is None
    assert time.monotonic() - started < 15


async def test_pre_start_refuses_when_still_held(
    fake: FakeNpuSmi, lane_procs: tuple[int, int, int]
) -> None:
    _, _, other = lane_procs
    fake.table(table_with([(0, 0, other, "old-vllm", 30000)]))
    monitor = make(config(fake, release_wait_s=0.3), {}, {"chat": (0,)})
    with capture_logs() as logs, pytest.raises(PreflightError) as err:
        await monitor.pre_start(lane("chat", (0,)))
    assert f"pid {other} (old-vllm) holds 30000 MB on NPU 0" in str(err.value)
    assert "start_despite_busy_npu" in str(err.value)
    assert any(e.get("lane") == "chat" and e["log_level"] == "error" for e in logs)
    # a process on another NPU does not matter
    assert await monitor.pre_start(lane("chat", (1, 2))) is None


async def test_pre_start_starts_anyway_when_configured(
    fake: FakeNpuSmi, lane_procs: tuple[int, int, int]
) -> None:
    _, _, other = lane_procs
    fake.table(table_with([(0, 0, other, "old-vllm", 30000)]))
    cfg = config(fake, release_wait_s=0.2, start_despite_busy_npu=True)
    monitor = make(cfg, {}, {"chat": (0,)})
    with capture_logs() as logs:
        warning = await monitor.pre_start(lane("chat", (0,)))
    assert warning is not None
    assert warning.startswith("started despite busy NPUs")
    assert str(other) in warning
    assert any(e.get("lane") == "chat" and e["log_level"] == "warning" for e in logs)


async def test_pre_start_when_npu_smi_fails_returns_none(fake: FakeNpuSmi) -> None:
    fake.mode("fail")
    monitor = make(config(fake), {}, {"chat": (0,)})
    assert await monitor.pre_start(lane("chat", (0,))) is None


async def test_output_past_the_cap_is_an_error_naming_it(fake: FakeNpuSmi) -> None:
    # 100 MB of output used to be read whole (+100 MB RSS); it is cut at the cap now.
    fake.flood(1600)
    cap = 256 * 1024
    started = time.monotonic()
    with pytest.raises(NpuSmiError) as err:
        await run_tool([str(fake.script), "info"], 30.0, max_output=cap)
    assert f"printed more than {cap} bytes (the cap)" in str(err.value)
    assert time.monotonic() - started < 20  # killed at the cap, not read to the end


async def test_output_within_the_cap_is_read_whole(fake: FakeNpuSmi) -> None:
    fake.flood(3)
    text = await run_tool([str(fake.script), "info"], 30.0, max_output=4 * 65537)
    assert len(text) == 3 * 65537


def test_the_default_cap_is_bounded() -> None:
    assert 64 * 1024 <= MAX_OUTPUT_BYTES <= 16 * 1024 * 1024


async def test_a_monitor_whose_npu_smi_floods_goes_stale_saying_why(fake: FakeNpuSmi) -> None:
    monitor = make(config(fake))
    fake.flood(1600)
    assert await monitor.poll() is None
    assert "the cap" in (monitor.view().error or "")
    assert monitor.view().stale


async def test_lanes_starting_together_share_one_hanging_npu_smi(fake: FakeNpuSmi) -> None:
    # Each pre-start check used to run npu-smi in turn: with it hanging, the n-th lane
    # waited n timeouts. They share the runs now: every lane is through after at most
    # two timeouts (a run already going, then one fresh run), whatever their number.
    timeout = 3.0
    monitor = make(config(fake, timeout_s=timeout, interval_s=0.05), {}, {})
    await monitor.start()
    fake.mode("hang")
    lanes = [lane(f"lane{i}", (i,)) for i in range(8)]
    try:
        started = time.monotonic()
        async with asyncio.timeout(120):
            results = await asyncio.gather(*(monitor.pre_start(each) for each in lanes))
        took = time.monotonic() - started
    finally:
        await monitor.stop()
    assert results == [None] * 8  # npu-smi failed: the check cannot tell, lanes start
    assert fake.runs("hang") <= 3  # the loop's run, the checks' one, maybe the loop's next
    assert took < 2 * timeout + SLACK_S < len(lanes) * timeout, took
    assert "did not answer" in (monitor.view().error or "")


async def test_a_cancelled_check_leaves_the_shared_run_to_the_others(fake: FakeNpuSmi) -> None:
    monitor = make(config(fake), {}, {})
    first = asyncio.create_task(monitor.poll())
    second = asyncio.create_task(monitor.poll())
    await asyncio.sleep(0)  # both joined the run; no event to await before it ends
    first.cancel()
    async with asyncio.timeout(20):
        reading = await second
    assert reading is not None and len(reading.npus) == 8
    assert first.cancelled()


def test_table_helper_parses() -> None:
    reading = parse_info(table_with([(5, 0, 123, "x", 7)], sick=2))
    assert [(p.npu, p.pid, p.memory_mb) for p in reading.processes] == [(5, 123, 7)]
    assert reading.npus[2].health == "Warning"
