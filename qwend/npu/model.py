"""The npu-smi data model (pure): NPUs, chips and processes of one ``npu-smi info``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chip:
    """One chip of an NPU, from the two table rows npu-smi prints for it."""

    npu: int
    """NPU (card) id as npu-smi numbers it (0..15, or 215, 1792, 2048 on some hosts)."""
    chip: int
    """Chip id within the NPU (0 for single-chip NPUs)."""
    device: int | None
    """``Device`` / ``Phy-ID`` column when printed (310, 310P, A3), else None."""
    name: str
    """Chip name as printed (``910B3``, ``Ascend910``, ``310P3``...)."""
    health: str
    """``OK``, ``Warning``, ``Alarm``, ``Critical``..."""
    power_w: float | None
    """Board power; None when ``NA`` or ``-`` (the second chip of an A3 NPU)."""
    temp_c: int | None
    """Chip temperature."""
    aicore_pct: int | None
    """AICore (``NPU Util`` on A5) utilisation in percent."""
    memory_used_mb: int | None
    """DDR (``Memory-Usage``) used."""
    memory_total_mb: int | None
    """DDR total (0 on 910B/A3, which have HBM only)."""
    hbm_used_mb: int | None
    """HBM used; None when the table has no HBM column (310, 310P)."""
    hbm_total_mb: int | None
    """HBM total."""
    bus_id: str | None
    """PCIe bus id (``0000:C1:00.0``); None when ``NA``."""
    hugepages_used: int | None = None
    """Hugepages in use (pages); None when the column is missing (old drivers)."""
    hugepages_total: int | None = None
    """Hugepages total (pages)."""

    @property
    def ok(self) -> bool:
        """True when the chip's health is ``OK``."""
        return self.health.upper() == "OK"

    @property
    def has_hbm(self) -> bool:
        """HBM is the chip's main memory: printed and with a non-zero total."""
        return bool(self.hbm_total_mb)

    @property
    def used_mb(self) -> int | None:
        """Main memory used: HBM when present, else DDR."""
        return self.hbm_used_mb if self.has_hbm else self.memory_used_mb

    @property
    def total_mb(self) -> int | None:
        """Main memory total: HBM when present, else DDR."""
        return self.hbm_total_mb if self.has_hbm else self.memory_total_mb


@dataclass(frozen=True)
class Npu:
    """One NPU (card) with its chips."""

    id: int
    """NPU id as npu-smi numbers it."""
    chips: tuple[Chip, ...]
    """Its chips, in the order printed."""

    @property
    def name(self) -> str:
        """Name of the first chip."""
        return self.chips[0].name

    @property
    def ok(self) -> bool:
        """True when every chip is healthy."""
        return all(c.ok for c in self.chips)

    @property
    def health(self) -> str:
        """``OK``, or the first non-OK chip health."""
        return next((c.health for c in self.chips if not c.ok), "OK")


@dataclass(frozen=True)
class NpuProcess:
    """One row of the process table."""

    npu: int
    """NPU id."""
    chip: int
    """Chip id within the NPU (0 when the table has no chip column, as on A5)."""
    pid: int
    """Host process id."""
    name: str
    """Process name as printed: may be empty or truncated by npu-smi."""
    memory_mb: int
    """Device memory held, in MB (converted when the table prints bytes)."""
    container_pid: int | None = None
    """``Process id in container`` column, when printed."""


@dataclass(frozen=True)
class NpuReading:
    """A parsed ``npu-smi info``."""

    npus: tuple[Npu, ...]
    """Every NPU, in the order printed."""
    processes: tuple[NpuProcess, ...]
    """Every process row."""
    tool_version: str | None = None
    """``npu-smi X`` version."""
    driver_version: str | None = None
    """``Version: Y``."""
    has_process_table: bool = False
    """False when the output had no process table at all (some captures end early)."""
    warnings: tuple[str, ...] = ()
    """Text around the table (driver warnings), kept to show, not parsed."""

    @property
    def chips(self) -> tuple[Chip, ...]:
        """Every chip of every NPU."""
        return tuple(c for n in self.npus for c in n.chips)

    def npu(self, npu_id: int) -> Npu | None:
        """The NPU with this id, or None."""
        return next((n for n in self.npus if n.id == npu_id), None)

    def device_index(self, npu_id: int, chip_id: int) -> int:
        """The device index (``ASCEND_RT_VISIBLE_DEVICES`` numbering) of a chip.

        The ``Device``/``Phy-ID`` column when printed; else the NPU id for
        single-chip NPUs (910A/910B hosts number them alike); else the chip's
        position in the table.
        """
        for pos, chip in enumerate(self.chips):
            if chip.npu == npu_id and chip.chip == chip_id:
                if chip.device is not None:
                    return chip.device
                npu = self.npu(npu_id)
                if npu is not None and len(npu.chips) == 1:
                    return npu_id
                return pos
        return npu_id

    def chip_at(self, device: int) -> Chip | None:
        """The chip with this device index, or None."""
        return next((c for c in self.chips if self.device_index(c.npu, c.chip) == device), None)

    def process_device(self, proc: NpuProcess) -> int:
        """Device index of the chip a process runs on."""
        return self.device_index(proc.npu, proc.chip)


@dataclass(frozen=True)
class LaneProcess:
    """A process of the process table, attributed to a lane (or not)."""

    process: NpuProcess
    """The row as npu-smi printed it."""
    device: int
    """Device index of its chip (the numbering of lane ``npus``)."""
    lane: str | None
    """The lane whose process tree contains the pid; None for foreign processes."""
    foreign_to: tuple[str, ...] = ()
    """Lanes whose NPUs this process holds memory on without being theirs."""


@dataclass(frozen=True)
class NpuView:
    """What the NPU monitor knows now: the last good reading and what it means for lanes."""

    enabled: bool
    """False when the monitor is off or npu-smi cannot be found (``error`` says why)."""
    reading: NpuReading | None
    """The last good reading; None before the first one."""
    taken_at: float | None = None
    """Epoch seconds when ``reading`` was taken."""
    age_s: float | None = None
    """Seconds since ``taken_at`` when the view was made."""
    stale: bool = False
    """True when the last poll failed (``error``) or the reading is too old."""
    error: str | None = None
    """Why the view is stale or the monitor is off (npu-smi timed out, failed, unparsable)."""
    processes: tuple[LaneProcess, ...] = ()
    """Every process row, attributed."""
    lane_npus: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Lane -> its configured NPUs (device indexes)."""
    degraded: Mapping[str, str] = field(default_factory=dict)
    """Lane -> reason, for lanes one of whose NPUs is not healthy."""

    def foreign_on(self, lane: str) -> tuple[LaneProcess, ...]:
        """Processes holding memory on ``lane``'s NPUs that are not the lane's own."""
        return tuple(p for p in self.processes if lane in p.foreign_to)

    def lane_processes(self, lane: str) -> tuple[LaneProcess, ...]:
        """The lane's own processes on NPUs."""
        return tuple(p for p in self.processes if p.lane == lane)
