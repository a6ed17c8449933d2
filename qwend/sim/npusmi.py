"""The fake npu-smi's output (pure): the 910A layout of the real captures.

``render_info`` prints ``npu-smi info`` (8 NPUs, 32768 MB HBM each, process
table), ``render_mapping`` prints ``npu-smi info -m`` and ``render_usages``
prints ``npu-smi info -t usages -i N``. Sim lanes (``LaneRecord``s) appear as
processes on the NPUs of their ``ASCEND_RT_VISIBLE_DEVICES``; their HBM and AI
Core load show in the NPU rows. Column widths follow the captures in
``tests/fixtures/npu-smi/910a-info-8npu-*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qwend.sim.state import HBM_TOTAL_MB, LaneRecord

NPU_COUNT = 8
VERSION = "24.1.RC2"
BUS_IDS = (
    "0000:C1:00.0", "0000:81:00.0", "0000:41:00.0", "0000:01:00.0",
    "0000:C2:00.0", "0000:82:00.0", "0000:42:00.0", "0000:02:00.0",
)  # fmt: skip
IDLE_POWER_W = (70.5, 71.2, 69.0, 66.9, 70.2, 64.9, 69.4, 67.3)
IDLE_TEMP_C = (42, 36, 35, 39, 39, 37, 40, 42)
DDR_USED_MB = (4252, 4666, 4317, 3616, 3708, 4346, 4261, 4521)
DDR_TOTAL_MB = (15137, 15137, 15137, 15039, 15137, 15137, 15137, 15039)
USAGE = "Usage: npu-smi info <watch|proc|-h|-m|-l|-t type> [Options...]"

_RULE = (
    "+----------------------+---------------+----------------------------------------------------+"
)
_DOUBLE = (
    "+======================+===============+====================================================+"
)
_TOP = "+" + "-" * 91 + "+"
_HEAD_1 = (
    "| NPU   Name           | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|"
)
_HEAD_2 = (
    "| Chip                 | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |"
)
_PROC_HEAD = (
    "| NPU     Chip         | Process id    | Process name             | Process memory(MB)      |"
)


@dataclass(frozen=True)
class NpuLoad:
    """One NPU as the fake tool shows it."""

    npu: int
    hbm_mb: int
    aicore_pct: int
    processes: tuple[LaneRecord, ...]

    @property
    def power_w(self) -> float:
        """Board power: idle draw plus up to ~135 W at full AI Core load."""
        return round(IDLE_POWER_W[self.npu] + 1.35 * self.aicore_pct, 1)

    @property
    def temp_c(self) -> int:
        """Chip temperature."""
        return IDLE_TEMP_C[self.npu] + self.aicore_pct // 7


def npu_loads(records: Sequence[LaneRecord]) -> list[NpuLoad]:
    """Per-NPU totals of the lanes' HBM and AI Core load."""
    loads = []
    for npu in range(NPU_COUNT):
        procs = tuple(r for r in records if npu in r.npus)
        hbm = min(HBM_TOTAL_MB, sum(r.hbm_mb for r in procs))
        aicore = min(100, sum(r.aicore_pct for r in procs))
        loads.append(NpuLoad(npu, hbm, aicore, procs))
    return loads


def _npu_rows(load: NpuLoad) -> list[str]:
    n = load.npu
    first = f"| {n:<6}{'910A':<15}| {'OK':<14}| {load.power_w:<12}{load.temp_c:<18}{0:<5}/ {0:<14}|"
    second = (
        f"| {0:<21}| {BUS_IDS[n]:<14}| {load.aicore_pct:<12}"
        f"{DDR_USED_MB[n]:<5}/ {DDR_TOTAL_MB[n]:<11}{load.hbm_mb:<5}/ {HBM_TOTAL_MB:<14}|"
    )
    return [first, second, _DOUBLE]


def _process_rows(load: NpuLoad) -> list[str]:
    if not load.processes:
        return [f"| {f'No running processes found in NPU {load.npu}':<90}|", _DOUBLE]
    rows = [
        f"| {load.npu:<8}{0:<13}| {r.pid:<14}| {r.process_name[:24]:<25}| {r.hbm_mb:<24}|"
        for r in load.processes
    ]
    return [*rows, _DOUBLE]


def render_info(records: Sequence[LaneRecord]) -> str:
    """``npu-smi info``."""
    loads = npu_loads(records)
    lines = [
        _TOP,
        f"| {'npu-smi ' + VERSION:<42}{'Version: ' + VERSION:<48}|",
        _RULE,
        _HEAD_1,
        _HEAD_2,
        _DOUBLE,
    ]
    for load in loads:
        lines += _npu_rows(load)
    lines += [
        _RULE,
        _PROC_HEAD,
        _DOUBLE,
    ]
    for load in loads:
        lines += _process_rows(load)
    return "\n".join(lines) + "\n"


def render_mapping() -> str:
    """``npu-smi info -m`` (tab-indented, as the tool prints it)."""
    head = ("NPU ID", "Chip ID", "Chip Logic ID", "Chip Name")
    rows = [head] + [(str(n), "0", str(n), "Ascend 910A") for n in range(NPU_COUNT)]
    return "".join("\t" + "".join(f"{c:<31}" for c in row[:3]) + row[3] + "\n" for row in rows)


def render_usages(records: Sequence[LaneRecord], npu: int) -> str:
    """``npu-smi info -t usages -i N``; ``npu`` must be in range (see ``valid_npu``)."""
    load = npu_loads(records)[npu]
    fields: list[tuple[str, object] | None] = [
        ("NPU ID", npu),
        ("Chip Count", 1),
        None,
        ("DDR Capacity(MB)", 15171),
        ("DDR Usage Rate(%)", round(100 * DDR_USED_MB[npu] / DDR_TOTAL_MB[npu])),
        ("DDR Hugepages Total(page)", 0),
        ("DDR Hugepages Usage Rate(%)", 0),
        ("HBM Capacity(MB)", HBM_TOTAL_MB),
        ("HBM Usage Rate(%)", round(100 * load.hbm_mb / HBM_TOTAL_MB)),
        ("Aicore Usage Rate(%)", load.aicore_pct),
        ("Aicpu Usage Rate(%)", 0),
        ("Ctrlcpu Usage Rate(%)", 9 if load.processes else 3),
        ("DDR Bandwidth Usage Rate(%)", 0),
        ("HBM Bandwidth Usage Rate(%)", load.aicore_pct * 3 // 5),
        ("Chip ID", 0),
    ]
    lines = ["" if f is None else f"\t{f[0]:<31}: {f[1]}" for f in fields]
    return "\n".join(lines) + "\n"


def valid_npu(npu: int) -> bool:
    """Whether ``-i npu`` names an NPU of this box."""
    return 0 <= npu < NPU_COUNT


def invalid_card_text() -> str:
    """What npu-smi prints for a bad ``-i``."""
    return f"Invalid card id.\nError parameter of -i\n{USAGE}\n"


def missing_card_text() -> str:
    """What npu-smi prints for ``-t usages`` without ``-i``."""
    return f"This command must input card id.\n\n{USAGE}\n"
