"""Rendering of readings and monitor views: text for people, dicts for JSON, and back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from qwend.cli.npus import parse_npu_file
from qwend.errors import NpuSmiError
from qwend.npu.attribution import attribute, degraded
from qwend.npu.parse import LaneProcess, NpuView, parse_info
from qwend.npu.render import (
    parsed_to_dict,
    reading_from_dict,
    reading_to_dict,
    render_view,
    view_from_dict,
    view_to_dict,
)
from tests.support.paths import NPU_SMI_FIXTURES

FIXTURES = NPU_SMI_FIXTURES
A3 = FIXTURES / "a3-910c-ascend910-info-8npu-16chip-8procs-npu24.1.rc3.3.txt"
ERRORS = {
    "error-info-dcmi-init-failed-8005-container.txt",
    "910b1-info-help-npu23.0.rc2.txt",
    "a3-usages-without-i-error-help-npu26.1.0.b087.txt",
    "910a-board-i0-error-invalid-card-id-faultdiag.txt",
}


def a3_view(stale: bool = False) -> NpuView:
    reading = parse_info(A3.read_text())
    sick = reading.npus[0].chips[0]
    # NPU 0 chip 0 unhealthy, to show a degraded lane
    npus = (
        replace(reading.npus[0], chips=(replace(sick, health="Alarm"), *reading.npus[0].chips[1:])),
    )
    reading = replace(reading, npus=npus + reading.npus[1:])
    lane_npus = {"chat": (0, 1), "big": (8, 9, 10, 11)}
    procs = attribute(reading, {"big": {957687, 957770}}, lane_npus)
    return NpuView(
        enabled=True,
        reading=reading,
        taken_at=1_700_000_000.0,
        age_s=2.5,
        stale=stale,
        error="npu-smi did not answer within 10 s and was killed" if stale else None,
        processes=procs,
        lane_npus=lane_npus,
        degraded=degraded(reading, lane_npus),
    )


def test_view_round_trips_through_json() -> None:
    view = a3_view(stale=True)
    again = view_from_dict(json.loads(json.dumps(view_to_dict(view))))
    assert again == view


def test_reading_round_trips_for_every_fixture() -> None:
    for path in sorted(FIXTURES.glob("*.txt")):
        if path.name in ERRORS or not path.read_text().startswith("+"):
            continue
        reading = parse_info(path.read_text())
        assert reading_from_dict(json.loads(json.dumps(reading_to_dict(reading)))) == reading


def test_render_view_shows_lanes_foreign_and_degraded() -> None:
    text = render_view(a3_view())
    assert text.startswith("npu-smi 24.1.rc3.3: reading 2.5 s old")
    lines = text.splitlines()
    proc_957687 = next(ln for ln in lines if "957687" in ln)
    assert proc_957687.split()[-1] == "big"
    proc_957790 = next(ln for ln in lines if "957790" in ln)
    assert "FOREIGN on big" in proc_957790
    assert "lane chat degraded: NPU 0 health Alarm" in text
    assert "lane big: pid 957790 (pt_main_thread) is not the lane's and holds 49207 MB" in text
    chip_row = next(ln for ln in lines if ln.split()[:3] == ["4", "0", "8"])
    assert chip_row.split()[-1] == "big"
    assert "52553 / 65536 HBM" in chip_row


def test_render_view_stale_off_and_empty() -> None:
    assert render_view(a3_view(stale=True)).startswith("STALE (npu-smi did not answer")
    off = NpuView(enabled=False, reading=None, error="npu-smi not found: 'npu-smi'")
    assert render_view(off) == "NPU monitor off: npu-smi not found: 'npu-smi'"
    waiting = NpuView(enabled=True, reading=None, stale=True, error="exited with status 1")
    assert render_view(waiting) == "No NPU reading yet: exited with status 1"


def test_lane_process_labels() -> None:
    view = a3_view()
    (p,) = [p for p in view.processes if p.process.pid == 957687]
    assert p == LaneProcess(p.process, 8, "big", ())


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.txt")), ids=lambda p: p.name)
def test_parse_report_for_every_fixture(path: Path) -> None:
    if path.name in ERRORS:
        with pytest.raises(NpuSmiError, match="not recognised at line"):
            parse_npu_file(path.read_text())
        return
    data, text = parse_npu_file(path.read_text())
    assert text.strip()
    data = json.loads(json.dumps(data))
    assert data["form"] in {"info", "map", "list", "topo", "health", "detail"}


def test_parse_report_content() -> None:
    _, text = parse_npu_file(A3.read_text())
    assert "8 NPU(s), 16 chip(s)" in text
    assert "957687  pt_main_thread" in text
    data = parsed_to_dict(parse_info(A3.read_text()))
    assert data["npus"][4]["chips"][1]["device_index"] == 9
    assert data["processes"][0] == {
        "npu": 4, "chip": 0, "pid": 957687, "name": "pt_main_thread", "memory_mb": 49207,
        "container_pid": None, "device_index": 8,
    }  # fmt: skip
