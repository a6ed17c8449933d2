"""The daemon's ``/metrics`` families besides the router's: lanes, NPUs, promotions, build.

Each source reads its service's live view on the event loop when Prometheus
scrapes (``qwend.router.metrics.METRICS_SOURCES_KEY``); nothing is counted here.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from qwend import __version__
from qwend.npu.model import Chip, NpuView
from qwend.promotion.promoter import Promoter
from qwend.router.metrics import MetricsSource
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import LaneSnapshot, Supervisor

_MIB = 1024 * 1024
_LANE = ["lane", "role", "variant"]
_CHIP = ["npu", "chip", "device", "name"]


def lane_families(snapshots: tuple[LaneSnapshot, ...]) -> Iterator[Metric]:
    """Lane state (one series per state), active, restarts, last exit, process start."""
    state = GaugeMetricFamily(
        "qwend_lane_state",
        "1 for the lane's current state, 0 for the others",
        labels=[*_LANE, "state"],
    )
    active = GaugeMetricFamily(
        "qwend_lane_active", "1 when the lane is its role's active lane", labels=_LANE
    )
    standby = GaugeMetricFamily(
        "qwend_lane_standby", "1 when the lane is configured as a standby", labels=_LANE
    )
    restarts = CounterMetricFamily(
        "qwend_lane_restarts", "Automatic restarts since qwend started", labels=_LANE
    )
    exits = GaugeMetricFamily(
        "qwend_lane_last_exit_info",
        "How the lane's previous process ended (exit status or signal)",
        labels=[*_LANE, "last_exit"],
    )
    started = GaugeMetricFamily(
        "qwend_lane_process_start_time_seconds",
        "Start of the lane's current process (Unix time)",
        labels=_LANE,
    )
    for lane in snapshots:
        key = [lane.name, lane.role, lane.variant]
        for member in LaneState:
            state.add_metric([*key, member.value], 1 if lane.state is member else 0)
        active.add_metric(key, 1 if lane.active else 0)
        standby.add_metric(key, 1 if lane.standby else 0)
        restarts.add_metric(key, lane.restarts)
        if lane.last_exit is not None:
            exits.add_metric([*key, lane.last_exit], 1)
        if lane.started_at is not None:
            started.add_metric(key, lane.started_at)
    yield from (state, active, standby, restarts, exits, started)


_CHIP_GAUGES: tuple[tuple[str, str, Callable[[Chip], float | None]], ...] = (
    (
        "qwend_npu_memory_used_bytes",
        "Main memory (HBM, else DDR) in use",
        lambda c: None if c.used_mb is None else c.used_mb * _MIB,
    ),
    (
        "qwend_npu_memory_total_bytes",
        "Main memory (HBM, else DDR) size",
        lambda c: None if c.total_mb is None else c.total_mb * _MIB,
    ),
    (
        "qwend_npu_aicore_utilization_ratio",
        "AICore utilisation (0..1)",
        lambda c: None if c.aicore_pct is None else c.aicore_pct / 100,
    ),
    ("qwend_npu_temperature_celsius", "Chip temperature", lambda c: c.temp_c),
    ("qwend_npu_power_watts", "Board power", lambda c: c.power_w),
    ("qwend_npu_health_ok", "1 when npu-smi reports the chip's health as OK", lambda c: int(c.ok)),
)


def npu_families(view: NpuView) -> Iterator[Metric]:
    """The last npu-smi reading per chip, and how fresh it is."""
    yield GaugeMetricFamily(
        "qwend_npu_monitor_enabled",
        "1 when the NPU monitor runs (npu-smi found and enabled)",
        value=1 if view.enabled else 0,
    )
    yield GaugeMetricFamily(
        "qwend_npu_reading_stale",
        "1 when the last npu-smi poll failed or the reading is too old",
        value=1 if view.stale else 0,
    )
    taken = GaugeMetricFamily(
        "qwend_npu_reading_timestamp_seconds", "When the last good npu-smi reading was taken"
    )
    if view.taken_at is not None:
        taken.add_metric([], view.taken_at)
    yield taken
    chips = view.reading.chips if view.reading is not None else ()
    for name, text, get in _CHIP_GAUGES:
        fam = GaugeMetricFamily(name, text, labels=_CHIP)
        for chip in chips:
            value = get(chip)
            if value is not None:
                fam.add_metric(_chip_labels(chip), float(value))
        yield fam
    health = GaugeMetricFamily(
        "qwend_npu_health_info", "The chip's health as npu-smi prints it", labels=[*_CHIP, "health"]
    )
    for chip in chips:
        health.add_metric([*_chip_labels(chip), chip.health], 1)
    yield health


def _chip_labels(chip: Chip) -> list[str]:
    return [
        str(chip.npu),
        str(chip.chip),
        "" if chip.device is None else str(chip.device),
        chip.name,
    ]


def promotion_families(finished: dict[tuple[str, str, str], int]) -> Iterator[Metric]:
    """Promotions and rollbacks finished since start, by role, kind and outcome."""
    fam = CounterMetricFamily(
        "qwend_promotions",
        "Promotions (kind=promote) and manual rollbacks (kind=rollback) finished, by outcome",
        labels=["role", "kind", "outcome"],
    )
    for (role, kind, outcome), count in sorted(finished.items()):
        fam.add_metric([role, kind, outcome], count)
    yield fam


def build_families() -> Iterator[Metric]:
    """``qwend_build_info``: the version running (join on it in dashboards)."""
    fam = GaugeMetricFamily(
        "qwend_build_info", "qwend's version and Python", labels=["version", "python"]
    )
    fam.add_metric([__version__, platform.python_version()], 1)
    yield fam


def metrics_sources(
    supervisor: Supervisor, view: Callable[[], NpuView], promoter: Promoter
) -> list[MetricsSource]:
    """The daemon's sources for the router app's ``/metrics``."""
    return [
        build_families,
        lambda: lane_families(supervisor.snapshots()),
        lambda: npu_families(view()),
        lambda: promotion_families(dict(promoter.finished)),
    ]
