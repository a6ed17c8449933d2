"""LaneProcess with real subprocesses: env, logs, stop escalation, orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwend.config.model import StopMode
from qwend.errors import LaneError
from qwend.supervisor.guard import OrphanGuard
from qwend.supervisor.output import LogRing, read_log_tail, rotate_logs
from qwend.supervisor.process import (
    LaneProcess,
    describe_requested_stop,
    describe_returncode,
    group_members,
    kill_lane,
    lane_environment,
    lane_members,
)
from tests.support.lanescripts.factory import get_json, make_lane, pid_alive, wait_json
from tests.support.paths import REPO
from tests.support.polling import SLACK_S, until, wait_for


def test_environment_layers_and_visible_devices() -> None:
    lane = make_lane("a", npus=(3, 1), env={"LANE_ONLY": "1", "SHARED": "lane"})
    env = lane_environment(
        lane,
        inherited={
            "HOME": "/h",
            "SHARED": "inherited",
            "ASCEND_RT_VISIBLE_DEVICES": "7",
            "NOTIFY_SOCKET": "/run/systemd/notify",
        },
        extra={"PATH": "/venv/bin:/usr/bin"},
    )
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "1,3"
    assert env["SHARED"] == "lane"
    assert env["HOME"] == "/h"
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["LANE_ONLY"] == "1"
    assert "NOTIFY_SOCKET" not in env
    a2 = lane_environment(lane, inherited={}, chip_family="910B3")
    assert a2["HCCL_OP_EXPANSION_MODE"] == "AIV"  # multi-NPU lane on A2
    assert a2["ASCEND_RT_VISIBLE_DEVICES"] == "1,3"
    pinned = make_lane("p", npus=(0, 1), env={"HCCL_OP_EXPANSION_MODE": ""})
    assert (
        lane_environment(pinned, inherited={}, chip_family="910B3")["HCCL_OP_EXPANSION_MODE"] == ""
    )


def test_describe_returncode() -> None:
    assert describe_returncode(0) == "exit 0"
    assert describe_returncode(3) == "exit 3"
    assert describe_returncode(-9) == "signal SIGKILL"
    assert describe_returncode(-15) == "signal SIGTERM"


def test_rotate_logs_keeps_a_bounded_number(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    for n in range(5):
        rotate_logs(log, keep=2)
        log.write_text(f"run {n}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log", "x.log.1", "x.log.2"]
    assert log.read_text() == "run 4\n"
    assert (tmp_path / "x.log.1").read_text() == "run 3\n"
    assert (tmp_path / "x.log.2").read_text() == "run 2\n"
    assert read_log_tail(tmp_path / "x.log.2", 5) == ["run 2"]
    assert read_log_tail(tmp_path / "missing.log", 5) == []


async def test_log_ring_tail_and_follow() -> None:
    ring = LogRing(size=3)
    ring.feed("a\nb")
    assert ring.tail(10) == ["a"]
    ring.feed("c\nd\ne\n")
    assert ring.tail(10) == ["bc", "d", "e"]
    assert ring.tail(1) == ["e"]
    lines = ring.follow()
    ring.feed("f\ng\n")
    assert [await anext(lines), await anext(lines)] == ["f", "g"]  # only lines fed after follow()
    await lines.aclose()
    ring.feed("h\n")
    assert [line async for line in lines] == []  # a closed follower gets nothing more


async def spawn(
    tmp_path: Path,
    *extra: str,
    stop_timeout: float = 5.0,
    keep: int = 3,
    stop_mode: StopMode = StopMode.GROUP,
) -> LaneProcess:
    lane = make_lane("t", npus=(2, 0), extra=extra, stop_timeout=stop_timeout, stop_mode=stop_mode)
    proc = LaneProcess(
        lane, log_dir=tmp_path, log_keep=keep, env=lane_environment(lane, extra={"X_EXTRA": "1"})
    )
    await proc.start()
    await wait_json(f"{lane.base_url}/v1/models")
    return proc


async def test_lane_runs_in_its_own_group_with_its_devices(tmp_path: Path) -> None:
    proc = await spawn(tmp_path)
    assert proc.pid is not None
    try:
        info = await get_json(f"{proc.lane.base_url}/env")
        assert isinstance(info, dict)
        assert info["ASCEND_RT_VISIBLE_DEVICES"] == "0,2"
        assert info["env"]["X_EXTRA"] == "1"
        assert os.getpgid(proc.pid) == proc.pid
        assert os.getsid(proc.pid) == proc.pid
    finally:
        assert await proc.stop(signal.SIGTERM, 5.0) == "signal SIGTERM"
    assert not pid_alive(proc.pid)
    text = (tmp_path / "t.log").read_text()
    assert "lane starting" in text
    assert "devices=0,2" in text
    assert any("listening on" in line for line in proc.ring.tail(50))


async def test_stop_escalates_to_sigkill_after_timeout(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, "--ignore-term", stop_timeout=0.5)
    started = time.monotonic()
    result = await proc.stop(signal.SIGTERM, 0.5)
    elapsed = time.monotonic() - started
    assert result == "signal SIGKILL"
    assert 0.5 <= elapsed < 0.5 + SLACK_S


async def test_stop_kills_grandchildren_that_ignore_sigterm(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, "--spawn-child")
    assert proc.pid is not None
    info = await get_json(f"{proc.lane.base_url}/env")
    assert isinstance(info, dict)
    child = info["child_pid"]
    assert isinstance(child, int)
    assert pid_alive(child)
    await proc.stop(signal.SIGTERM, 5.0)
    assert not pid_alive(child)
    assert group_members(proc.pid) == []


async def test_kill_9_of_the_leader_takes_its_group_down(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, "--spawn-child")
    assert proc.pid is not None
    info = await get_json(f"{proc.lane.base_url}/env")
    assert isinstance(info, dict)
    child = info["child_pid"]
    os.kill(proc.pid, signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
    await proc.finish()
    assert not pid_alive(child)
    assert proc.exit_description == "signal SIGKILL"


async def grouped_child(tmp_path: Path) -> tuple[LaneProcess, int]:
    """A lane whose grandchild ignores SIGTERM in a process group of its own (Ray's raylet
    does that to every worker): outside the lane's group, still in its session."""
    proc = await spawn(tmp_path, "--spawn-child", "--child-own-group")
    assert proc.pid is not None
    info = await get_json(f"{proc.lane.base_url}/env")
    assert isinstance(info, dict)
    child = info["child_pid"]
    assert isinstance(child, int) and pid_alive(child)
    assert os.getpgid(child) == child and os.getsid(child) == proc.pid
    assert child not in group_members(proc.pid)
    assert child in lane_members(proc.pid)
    return proc, child


async def test_stop_kills_a_grandchild_that_left_the_lanes_group(tmp_path: Path) -> None:
    proc, child = await grouped_child(tmp_path)
    assert proc.pid is not None
    assert await proc.stop(signal.SIGTERM, 5.0) == "signal SIGTERM"
    assert not pid_alive(child), "gone when stop returns, not some time later"
    assert lane_members(proc.pid) == []


async def test_kill_9_of_the_leader_takes_a_grandchild_in_its_own_group(tmp_path: Path) -> None:
    proc, child = await grouped_child(tmp_path)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
    await proc.finish()
    assert not pid_alive(child)


def test_kill_lane_signals_each_process_once_and_spares_strangers() -> None:
    lane = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert lane_members(lane.pid) == [lane.pid]
        assert kill_lane(lane.pid, signal.SIGKILL)
        assert lane.wait(timeout=5) == -signal.SIGKILL
        assert not kill_lane(lane.pid, signal.SIGKILL), "nothing left to signal"
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


async def test_previous_logs_are_rotated(tmp_path: Path) -> None:
    for _ in range(3):
        proc = await spawn(tmp_path, keep=1)
        await proc.stop(signal.SIGTERM, 5.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.log", "t.log.1"]


async def test_missing_executable_is_an_actionable_error(tmp_path: Path) -> None:
    lane = make_lane("nope")
    lane = type(lane)(**{**lane.__dict__, "command": ("/nonexistent/vllm", "serve")})
    proc = LaneProcess(lane, log_dir=tmp_path, log_keep=1, env={})
    with pytest.raises(LaneError, match=r"lane nope: cannot run '/nonexistent/vllm'.*lane.command"):
        await proc.start()


ORPHAN_SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.support.lanescripts.factory import make_lane, wait_json, get_json
from qwend.logs import configure_logging
from qwend.supervisor.process import LaneProcess, lane_environment
from qwend.supervisor.guard import OrphanGuard

async def main():
    configure_logging(stream=sys.stderr)
    guard = OrphanGuard() if sys.argv[3] == "guard" else None
    lane = make_lane("orphan", extra=["--spawn-child", *sys.argv[4:]])
    proc = LaneProcess(lane, log_dir=Path(sys.argv[2]), log_keep=1,
                       env=lane_environment(lane), guard=guard)
    await proc.start()
    await wait_json(lane.base_url + "/v1/models")
    info = await get_json(lane.base_url + "/env")
    print(json.dumps({"lane": proc.pid, "child": info["child_pid"],
                      "guard": guard.pid if guard else None}), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("mode", "extra"),
    [("guard", ()), ("guard", ("--child-own-group",)), ("pdeathsig-only", ())],
    ids=["guard", "guard-child-in-own-group", "pdeathsig-only"],
)
def test_sigkilled_parent_leaves_no_lane_behind(
    tmp_path: Path, mode: str, extra: tuple[str, ...]
) -> None:
    repo = str(REPO)
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, repo, str(tmp_path), mode, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    wait_for(
        lambda: not pid_alive(pids["lane"]) and not (mode == "guard" and pid_alive(pids["child"])),
        timeout=SLACK_S,
        what=f"the lane (and with the guard its child) to die: {pids}",
    )
    if mode == "pdeathsig-only":
        # Without the guard, PDEATHSIG only reaches the direct child: the reason the guard exists.
        assert pid_alive(pids["child"])
        os.kill(pids["child"], signal.SIGKILL)


def test_guard_kills_registered_groups_on_close_and_restarts_when_killed() -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    guard = OrphanGuard()
    guard.register(sleeper.pid)
    first = guard.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)  # dead (the guard reaps it itself)
    guard.register(12345678)  # any write notices the dead guard and starts a new one
    guard.unregister(12345678)
    assert guard.pid not in (None, first)
    guard.close()
    assert sleeper.wait(timeout=5) == -signal.SIGKILL


async def test_a_watched_guard_is_restarted_at_once_with_every_group() -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    guard = OrphanGuard()
    watch = asyncio.create_task(guard.watch())
    try:
        guard.register(sleeper.pid)
        first = guard.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # No register/unregister follows: only the watch can bring a guard back.
        await until(lambda: guard.pid not in (None, first), SLACK_S, "a new guard")
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    guard.close()  # EOF for the new guard: it kills the group the old one was told about
    assert sleeper.wait(timeout=SLACK_S) == -signal.SIGKILL


def test_a_requested_stop_reads_as_stopped() -> None:
    term = int(signal.SIGTERM)
    assert describe_requested_stop("signal SIGTERM", term) == "stopped"
    assert describe_requested_stop("exit 0", term) == "stopped"
    assert describe_requested_stop("exit 143", term) == "stopped"  # a shell passing it on
    assert describe_requested_stop("signal SIGKILL", term) == "stopped (signal SIGKILL)"
    assert describe_requested_stop("exit 1", term) == "stopped (exit 1)"
    assert describe_requested_stop("signal SIGINT", int(signal.SIGINT)) == "stopped"


@pytest.mark.parametrize(
    ("mode", "child_signalled"), [(StopMode.GROUP, True), (StopMode.MAIN, False)]
)
async def test_stop_mode_says_who_gets_the_stop_signal(
    tmp_path: Path, mode: StopMode, child_signalled: bool
) -> None:
    # "main": only the lane's main process is asked (it stops its children its own way, as
    # `ray start --block` does). The main process here ignores SIGTERM, so the child has
    # the whole stop timeout to note a SIGTERM of its own before SIGKILL ends them both.
    term = tmp_path / "child-got-sigterm"
    proc = await spawn(
        tmp_path,
        "--ignore-term",
        "--spawn-child",
        "--child-term-file",
        str(term),
        stop_mode=mode,
        stop_timeout=1.0,
    )
    assert proc.pid is not None
    info = await get_json(f"{proc.lane.base_url}/env")
    assert isinstance(info, dict)
    child = info["child_pid"]
    assert isinstance(child, int) and pid_alive(child)
    # A SIGTERM before the child set its handler would end it without a word.
    await until(lambda: Path(f"{term}.armed").exists(), 20, "the child's SIGTERM handler")
    assert await proc.stop(signal.SIGTERM, 1.0) == "signal SIGKILL"
    assert not pid_alive(child) and lane_members(proc.pid) == []
    assert term.exists() is child_signalled
