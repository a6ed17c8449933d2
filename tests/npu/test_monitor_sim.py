"""The sim's fake npu-smi is read by the same parsers, and the monitor attributes sim lanes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from qwend.config.model import MonitorConfig
from qwend.npu.monitor import NpuMonitor
from qwend.npu.parse import parse_detail, parse_info, parse_map
from tests.support.simlane import SimLaneFactory, sim_executable


def fake_npu_smi(state_dir: Path, *args: str) -> str:
    env_cmd = [sim_executable(), "npu-smi", *args]
    out = subprocess.run(
        env_cmd,
        capture_output=True,
        check=True,
        timeout=30,
        env={"QWEND_SIM_STATE_DIR": str(state_dir), "PATH": "/usr/bin:/bin"},
    )
    return out.stdout.decode()


def test_sim_npu_smi_outputs_parse(sim_state_dir: Path) -> None:
    reading = parse_info(fake_npu_smi(sim_state_dir, "info"))
    assert [n.id for n in reading.npus] == list(range(8))
    assert {c.name for c in reading.chips} == {"910A"}
    assert all(c.ok and c.hbm_total_mb == 32768 for c in reading.chips)
    assert reading.has_process_table and reading.processes == ()
    mapping = parse_map(fake_npu_smi(sim_state_dir, "info", "-m"))
    assert [(m.npu, m.logic_id) for m in mapping] == [(i, i) for i in range(8)]
    usages = parse_detail(fake_npu_smi(sim_state_dir, "info", "-t", "usages", "-i", "3"))
    assert (usages.npu, usages.chips[0].hbm_total_mb) == (3, 32768)


async def test_monitor_attributes_sim_lanes(
    sim_lane: SimLaneFactory,
    sim_state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QWEND_SIM_STATE_DIR", str(sim_state_dir))
    chat = sim_lane(npus="0,1", lane_name="chat")
    embed = sim_lane(npus="2", lane_name="embed")
    pids = {"chat": chat.pid, "embed": embed.pid}
    npus = {"chat": (0, 1), "embed": (2,), "idle": (5,)}
    monitor = NpuMonitor(MonitorConfig(npu_smi="qwend-sim npu-smi"), lambda: pids, lambda: npus)
    assert monitor.available
    assert await monitor.poll() is not None
    view = monitor.view()
    seen = sorted((p.device, p.process.pid, p.lane) for p in view.processes)
    assert seen == [(0, chat.pid, "chat"), (1, chat.pid, "chat"), (2, embed.pid, "embed")]
    assert all(p.process.memory_mb > 0 for p in view.processes)
    assert not any(view.foreign_on(lane) for lane in npus)
    assert view.degraded == {}
    # a lane not running (idle) on NPU 2 would see embed's process as foreign
    npus["idle"] = (2,)
    await monitor.poll()
    assert [p.process.pid for p in monitor.view().foreign_on("idle")] == [embed.pid]
