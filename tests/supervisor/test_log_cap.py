"""Lane logs are capped by size while the lane runs, in both ways lanes write them.

qwend writes a piped lane's log itself (``CappedLog``: rename and reopen); a detached
lane writes its log file itself, so qwend copies and truncates it (``rotate_by_copy``).
Both are driven by real processes writing real files.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from qwend.supervisor.detached import DetachedLaneProcess, LaneRegistry
from qwend.supervisor.output import CappedLog, rotate_by_copy
from qwend.supervisor.process import LaneProcess
from tests.support.lanescripts.factory import make_lane, pid_alive
from tests.support.polling import until

KIB = 1024


def test_capped_log_rotates_at_the_cap_and_keeps_a_bounded_number(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    log = CappedLog(path, keep=2, max_bytes=100 * KIB)
    for n in range(10):
        log.write(bytes([65 + n]) * 40 * KIB)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.log", "a.log.1", "a.log.2"]
    assert all(p.stat().st_size <= 100 * KIB for p in tmp_path.iterdir())
    # The newest bytes are in a.log, the ones before in a.log.1.
    assert path.read_bytes().endswith(b"J" * 40 * KIB)
    assert (tmp_path / "a.log.1").read_bytes() == b"G" * 40 * KIB + b"H" * 40 * KIB


WRITER = """
import sys
for line in sys.stdin:
    sys.stdout.write(line)
    sys.stdout.flush()
"""


async def test_rotate_by_copy_under_a_live_append_writer(tmp_path: Path) -> None:
    path = tmp_path / "lane.log"
    with path.open("ab") as out:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=out, text=True
        )
    assert writer.stdin is not None
    try:
        writer.stdin.write("before\n" * 1000)
        writer.stdin.flush()
        await until(lambda: path.stat().st_size == 7000, what="the first lines")
        rotate_by_copy(path, keep=2)
        writer.stdin.write("after\n")
        writer.stdin.flush()
        await until(lambda: path.stat().st_size > 0, what="a line after the rotation")
    finally:
        writer.stdin.close()
        writer.wait(10)
    # The writer goes on at the start of the truncated file: no hole of NUL bytes.
    assert path.read_bytes() == b"after\n"
    assert (tmp_path / "lane.log.1").read_bytes() == b"before\n" * 1000


async def test_a_running_lane_that_writes_a_lot_has_its_log_rotated(tmp_path: Path) -> None:
    chatty = "import time\nfor i in range(5000): print('x' * 60, i, flush=True)\ntime.sleep(600)"
    lane = replace(make_lane("chatty"), command=(sys.executable, "-c", chatty))
    proc = LaneProcess(lane, log_dir=tmp_path, log_keep=2, env={}, log_max_bytes=64 * KIB)
    await proc.start()
    try:
        await until(lambda: (tmp_path / "chatty.log.2").exists(), 30, "two rotations")
        assert proc.running, "the lane keeps running while its log rotates"
    finally:
        await proc.stop(signal.SIGTERM, 5.0)
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert set(sizes) == {"chatty.log", "chatty.log.1", "chatty.log.2"}
    assert max(sizes.values()) <= 64 * KIB


async def test_a_detached_lane_that_writes_a_lot_has_its_log_rotated(tmp_path: Path) -> None:
    chatty = (
        "import time\n"
        "for i in range(3000): print('x' * 60, i, flush=True)\n"
        "time.sleep(1)\n"
        "print('after the rotation', flush=True)\n"
        "time.sleep(600)"
    )
    lane = replace(make_lane("chatty"), command=(sys.executable, "-c", chatty))
    logs = tmp_path / "logs"
    proc = DetachedLaneProcess(
        lane,
        log_dir=logs,
        log_keep=1,
        env={},
        registry=LaneRegistry(tmp_path),
        log_max_bytes=64 * KIB,
    )
    await proc.start()
    try:
        await until(lambda: (logs / "chatty.log.1").exists(), 30, "a rotation")
        await until(lambda: "after the rotation" in proc.ring.tail(5), 30, "the ring following")
        assert proc.pid is not None and pid_alive(proc.pid)
    finally:
        await proc.stop(signal.SIGTERM, 5.0)
    assert (logs / "chatty.log").stat().st_size <= 64 * KIB
    assert b"\0" not in (logs / "chatty.log").read_bytes()
