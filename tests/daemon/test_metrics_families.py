"""The daemon's /metrics families from NPU readings, lane snapshots and promotion counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from qwend.daemon.metrics import lane_families, npu_families, promotion_families
from qwend.npu.model import NpuView
from qwend.npu.parse import parse_info
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import LaneSnapshot
from tests.support.paths import NPU_SMI_FIXTURES


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def exposition(families: list[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry).decode()


def test_npu_gauges_follow_the_reading_and_its_health() -> None:
    text = (NPU_SMI_FIXTURES / "910a-info-4npu-warning-procmemB-npu23.0.rc1.b070.txt").read_text()
    view = NpuView(enabled=True, reading=parse_info(text), taken_at=1000.0, age_s=1.0)
    out = exposition(list(npu_families(view)))
    chip0 = 'chip="0",device="",name="910A",npu="0"'
    assert f"qwend_npu_health_ok{{{chip0}}} 0.0" in out  # the capture's chips are "Warning"
    health = 'chip="0",device="",health="Warning",name="910A",npu="0"'
    assert f"qwend_npu_health_info{{{health}}} 1.0" in out
    assert f"qwend_npu_temperature_celsius{{{chip0}}} 39.0" in out
    assert f"qwend_npu_power_watts{{{chip0}}} 72.0" in out
    assert "qwend_npu_reading_timestamp_seconds 1000.0" in out
    assert "qwend_npu_reading_stale 0.0" in out


def test_a_monitor_without_reading_exports_no_chip_series() -> None:
    out = exposition(list(npu_families(NpuView(enabled=True, reading=None, stale=True))))
    assert "qwend_npu_reading_stale 1.0" in out
    assert "qwend_npu_temperature_celsius{" not in out
    assert "\nqwend_npu_reading_timestamp_seconds " not in out


def test_lane_state_is_one_series_per_state() -> None:
    lane = LaneSnapshot(
        name="stable", role="stable", variant="v3", model="m", standby=False, active=True,
        state=LaneState.BACKOFF, pid=None, port=1, npus=(0,), started_at=None, restarts=4,
        last_exit="exit 1", reason="crashed", accepting=False, warnings=(),
    )  # fmt: skip
    out = exposition(list(lane_families((lane,))))
    key = 'lane="stable",role="stable"'
    states = [line for line in out.splitlines() if line.startswith("qwend_lane_state{")]
    assert len(states) == len(LaneState)
    assert f'qwend_lane_state{{{key},state="backoff",variant="v3"}} 1.0' in out
    assert sum(float(line.rsplit(" ", 1)[1]) for line in states) == 1
    assert f'qwend_lane_restarts_total{{{key},variant="v3"}} 4.0' in out
    exit_labels = 'lane="stable",last_exit="exit 1",role="stable",variant="v3"'
    assert f"qwend_lane_last_exit_info{{{exit_labels}}} 1.0" in out


def test_promotions_are_counted_by_role_kind_and_outcome() -> None:
    out = exposition(
        list(
            promotion_families(
                {("stable", "promote", "promoted"): 2, ("mm", "rollback", "failed"): 1}
            )
        )
    )
    assert 'qwend_promotions_total{kind="promote",outcome="promoted",role="stable"} 2.0' in out
    assert 'qwend_promotions_total{kind="rollback",outcome="failed",role="mm"} 1.0' in out
