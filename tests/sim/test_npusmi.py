"""The fake npu-smi: 910A layout, read by the same parser as the real captures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from qwend.npu import parse as npu
from qwend.sim import npusmi, state
from qwend.sim.state import LaneRecord
from tests.support.paths import NPU_SMI_FIXTURES
from tests.support.simlane import SimLaneFactory, run_npu_smi, wait_for

FIXTURES = NPU_SMI_FIXTURES


def record(pid: int = 4242, npus: tuple[int, ...] = (3,), **kw: object) -> LaneRecord:
    fields: dict[str, object] = {
        "pid": pid,
        "lane": "throughput",
        "variant": "v3",
        "npus": npus,
        "process_name": "python3",
        "hbm_mb": 20_000,
        "aicore_pct": 60,
        "updated": time.time(),
        **kw,
    }
    return LaneRecord(**fields)  # type: ignore[arg-type]


def test_info_layout_matches_the_910a_capture_widths() -> None:
    text = npusmi.render_info([record()])
    capture = (FIXTURES / "910a-info-8npu-procs-warning-npu24.1.RC2-huaweidoc.txt").read_text()
    assert {len(line) for line in text.splitlines()} == {len(capture.splitlines()[0])}
    assert text.splitlines()[:6] == capture.splitlines()[:6]
    assert text.splitlines()[-4] == "| No running processes found in NPU 6" + " " * 55 + "|"


def test_idle_info_parses_with_the_shared_parser() -> None:
    reading = npu.parse_info(npusmi.render_info([]))
    assert [n.id for n in reading.npus] == list(range(8))
    chips = [n.chips[0] for n in reading.npus]
    assert all(c.hbm_total_mb == 32768 and c.hbm_used_mb == 0 for c in chips)
    assert all(c.aicore_pct == 0 and c.health == "OK" for c in chips)
    assert reading.processes == ()
    assert reading.tool_version == "24.1.RC2"


def test_lane_shows_on_each_of_its_npus_with_load() -> None:
    lanes = [record(pid=11, npus=(2, 3)), record(pid=12, npus=(3,), hbm_mb=5000, aicore_pct=50)]
    reading = npu.parse_info(npusmi.render_info(lanes))
    by_npu = {n.id: n.chips[0] for n in reading.npus}
    assert by_npu[2].hbm_used_mb == 20_000
    assert by_npu[3].hbm_used_mb == 25_000
    assert by_npu[3].aicore_pct == 100  # capped
    assert by_npu[0].hbm_used_mb == 0
    assert by_npu[3].power_w is not None and by_npu[0].power_w is not None
    assert by_npu[3].power_w > by_npu[0].power_w
    procs = sorted((p.npu, p.pid, p.name, p.memory_mb) for p in reading.processes)
    assert procs == [
        (2, 11, "python3", 20_000),
        (3, 11, "python3", 20_000),
        (3, 12, "python3", 5000),
    ]


def test_mapping_matches_the_real_capture() -> None:
    capture = (FIXTURES / "910a-info-m-8npu-tabindent-faultdiag.txt").read_text()
    assert npusmi.render_mapping() == capture
    assert len(npu.parse_map(npusmi.render_mapping())) == 8


def test_usages_report_parses_and_follows_load() -> None:
    text = npusmi.render_usages([record(npus=(3,), hbm_mb=16384, aicore_pct=40)], 3)
    detail = npu.parse_detail(text)
    assert detail.npu == 3
    assert f"\t{'HBM Usage Rate(%)':<31}: 50" in text.splitlines()
    assert f"\t{'Aicore Usage Rate(%)':<31}: 40" in text.splitlines()


def test_state_records_of_dead_pids_are_ignored_unless_leaking(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    now = time.time()
    state.write_record(tmp_path, record(pid=os.getpid()))
    state.write_record(tmp_path, record(pid=dead_pid))
    assert [r.pid for r in state.read_records(tmp_path)] == [os.getpid()]
    state.write_record(tmp_path, record(pid=dead_pid, leak_until=now + 5))
    assert sorted(r.pid for r in state.read_records(tmp_path)) == sorted([os.getpid(), dead_pid])
    assert [r.pid for r in state.read_records(tmp_path, now=now + 10)] == [os.getpid()]
    (tmp_path / "lane-1.json").write_text("{not json")
    assert len(state.read_records(tmp_path, now=now + 10)) == 1


def test_reused_pid_is_not_mistaken_for_the_lane(tmp_path: Path) -> None:
    me = os.getpid()
    mine = state.process_start(me)
    assert mine is not None
    state.write_record(tmp_path, record(pid=me, started=mine))
    assert [r.pid for r in state.read_records(tmp_path)] == [me]
    state.write_record(tmp_path, record(pid=me, started=mine + 1))  # another process, same PID
    assert state.read_records(tmp_path) == []


def test_prune_removes_dead_and_expired_records_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    now = time.time()
    state.write_record(tmp_path, record(pid=os.getpid()))
    state.write_record(tmp_path, record(pid=int(dead.stdout), leak_until=now + 60))
    state.write_record(tmp_path, record(pid=1_999_999_999))
    assert state.prune(tmp_path, now=now) == 1
    assert len(list(tmp_path.glob("lane-*.json"))) == 2
    assert state.prune(tmp_path, now=now + 120) == 1
    assert [p.name for p in tmp_path.glob("lane-*.json")] == [f"lane-{os.getpid()}.json"]


def test_state_dir_resolution() -> None:
    assert state.state_dir({"QWEND_SIM_STATE_DIR": "/x/y"}) == Path("/x/y")
    assert state.state_dir({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path("/run/user/7/qwend-sim")
    assert state.state_dir({}).name == f"qwend-sim-{os.getuid()}"


def test_visible_devices_parsing() -> None:
    assert state.parse_visible_devices("4") == (4,)
    assert state.parse_visible_devices("0, 1,x") == (0, 1)
    assert state.parse_visible_devices(None) == ()


def test_hbm_and_aicore_follow_load() -> None:
    assert state.hbm_mb(0.0, 0, 0) == 0
    assert state.hbm_mb(1.0, 0, 0) == state.WEIGHTS_MB
    assert state.hbm_mb(1.0, 8, 20_000) > state.hbm_mb(1.0, 1, 100)
    assert state.hbm_mb(1.0, 10_000, 10**9) < state.HBM_TOTAL_MB
    assert state.aicore_pct("idle", 0) == 0
    assert 0 < state.aicore_pct("decode", 1) < state.aicore_pct("decode", 8) <= 97


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["info", "-t", "usages", "-i", "9"], 1, "Invalid card id."),
        (["info", "-t", "usages"], 1, "must input card id"),
        (["info", "-t", "usages", "-i", "2", "-c", "1"], 1, "Invalid chip id."),
        (["info", "-i", "2", "-t", "usages", "-c", "0"], 0, "NPU ID                         : 2"),
        (["info", "-t", "board", "-i", "1"], 2, ""),
    ],
)
def test_cli_errors_like_npu_smi(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    result = run_npu_smi(tmp_path, *args)
    assert result.returncode == code
    assert needle in result.stdout
    if code == 2:
        assert "Usage: npu-smi info" in result.stderr


def test_running_sim_lane_appears_on_its_npu(sim_lane: SimLaneFactory, sim_state_dir: Path) -> None:
    lane = sim_lane(npus="6", time_scale=20)
    reading = npu.parse_info(run_npu_smi(sim_state_dir, "info").stdout)
    [proc] = reading.processes
    assert (proc.npu, proc.pid) == (6, lane.pid)
    idle_hbm = reading.npus[6].chips[0].hbm_used_mb
    assert idle_hbm is not None and idle_hbm >= state.WEIGHTS_MB
    # Under load the lane's AI Core use shows up (the record refreshes on load change).
    client = openai.OpenAI(base_url=lane.openai_url, api_key="x", max_retries=0)
    record_file = sim_state_dir / f"lane-{lane.pid}.json"

    worker = threading.Thread(
        target=lambda: client.completions.create(model=lane.model, prompt="x", max_tokens=300)
    )
    worker.start()
    try:
        wait_for(
            lambda: json.loads(record_file.read_text())["aicore_pct"] > 0, what="AICore in state"
        )
        busy = npu.parse_info(run_npu_smi(sim_state_dir, "info").stdout)
        assert (busy.npus[6].chips[0].aicore_pct or 0) > 0
    finally:
        worker.join(timeout=30)
    usages = run_npu_smi(sim_state_dir, "info", "-t", "usages", "-i", "6")
    assert usages.returncode == 0
    assert npu.parse_detail(usages.stdout).npu == 6
