"""npu-smi parsers (pure): the ``npu-smi info`` device and process tables.

Every Ascend generation and driver draws the table a little differently
(column widths, extra Hugepages/HBM columns, a ``Device`` or ``Phy-ID`` column,
two rows per chip, one NPU row per chip on multi-chip cards, a fifth
``Process id in container`` column...). So nothing here uses fixed columns:
rows are split on ``|``, the header rows say which cell holds what, and values
inside a cell are read by kind (single values vs ``used / total`` pairs) in the
order the header names them. See docs/npu.md.

The data model is in :mod:`qwend.npu.model`, the smaller forms (``-m``, ``-l``,
``-t ...``) in :mod:`qwend.npu.forms`; both are re-exported here, so callers
import only ``qwend.npu.parse``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qwend.errors import NpuSmiError
from qwend.npu.forms import (
    ChipDetail,
    ChipMapping,
    HealthReport,
    NpuDetail,
    Topology,
    error_line,
    not_recognised,
    parse_detail,
    parse_health,
    parse_list,
    parse_map,
    parse_topo,
    to_float,
    to_int,
)
from qwend.npu.model import Chip, LaneProcess, Npu, NpuProcess, NpuReading, NpuView

__all__ = [
    "Chip",
    "ChipDetail",
    "ChipMapping",
    "HealthReport",
    "LaneProcess",
    "Npu",
    "NpuDetail",
    "NpuProcess",
    "NpuReading",
    "NpuSmiError",
    "NpuView",
    "Topology",
    "parse_any",
    "parse_detail",
    "parse_health",
    "parse_info",
    "parse_list",
    "parse_map",
    "parse_topo",
]


_VERSION = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", re.IGNORECASE)
_NO_PROCS = re.compile(r"No running processes found in NPU\s+(\d+)", re.IGNORECASE)
_BORDER = re.compile(r"^\+[-=+]*\+?$")
# One value in a metric cell: a "used / total" pair (any spacing) or a single token.
_ITEM = re.compile(r"(\S+?)\s*/\s*(\S+)|(\S+)")
# Column labels in a header cell: "Power(W)", "NPU Util(%)", "HBM-Usage(MB)".
_LABEL = re.compile(r"[A-Za-z][\w\- ]*?\([^)]*\)")
_BUS = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")
_DEFAULT_TOP = ("Power(W)", "Temp(C)", "Hugepages-Usage(page)")
_DEFAULT_BOTTOM = ("AICore(%)", "Memory-Usage(MB)", "HBM-Usage(MB)")


def _cells(line: str) -> list[str]:
    """Cells of a ``|`` row, stripped (a missing closing ``|`` is tolerated)."""
    parts = line.strip().split("|")
    inner = parts[1:-1] if line.rstrip().endswith("|") else parts[1:]
    return [p.strip() for p in inner]


def _is_pair_label(label: str) -> bool:
    return "usage" in label.lower()


@dataclass
class _Layout:
    """What the device header rows said (mutable while parsing)."""

    health_col: int = 1
    bus_col: int = 1
    top: tuple[str, ...] = _DEFAULT_TOP
    bottom: tuple[str, ...] = _DEFAULT_BOTTOM


def _metrics(cell: str, labels: Sequence[str], line: str) -> dict[str, object]:
    """Read a metric cell by kind: single labels take single values, pair labels pairs."""
    singles: list[str] = []
    pairs: list[tuple[str, str]] = []
    for m in _ITEM.finditer(cell.replace("N/A", "NA")):
        if m.group(3) is not None:
            singles.append(m.group(3))
        else:
            pairs.append((m.group(1), m.group(2)))
    single_labels = [lb for lb in labels if not _is_pair_label(lb)]
    pair_labels = [lb for lb in labels if _is_pair_label(lb)]
    if len(singles) > len(single_labels) or len(pairs) > len(pair_labels):
        raise not_recognised("info", line)
    out: dict[str, object] = {}
    try:
        for label, raw in zip(single_labels, singles, strict=False):
            key = label.lower()
            out[key] = to_float(raw) if "power" in key else to_int(raw)
        for label, (used, total) in zip(pair_labels, pairs, strict=False):
            out[label.lower()] = (to_int(used), to_int(total))
    except ValueError:
        raise not_recognised("info", line) from None
    return out


def _pick(values: dict[str, object], *words: str) -> object:
    for key, value in values.items():
        if any(w in key for w in words):
            return value
    return None


def _pair(values: dict[str, object], word: str) -> tuple[int | None, int | None]:
    value = _pick(values, word)
    if isinstance(value, tuple):
        return value[0], value[1]
    return None, None


def _chip(top: str, bottom: str, layout: _Layout) -> Chip:
    """Build a chip from its two rows."""
    t, b = _cells(top), _cells(bottom)
    if len(t) <= layout.health_col or len(b) <= layout.bus_col:
        raise not_recognised("info", top if len(t) <= layout.health_col else bottom)
    ident = " ".join(t[: layout.health_col]).split()
    if not ident or not ident[0].isdigit():
        raise not_recognised("info", top)
    chip_ids = " ".join(b[: layout.bus_col]).split()
    if any(not x.isdigit() for x in chip_ids):
        raise not_recognised("info", bottom)
    bus = b[layout.bus_col]
    if bus not in ("NA", "N/A", "-", "") and not _BUS.match(bus):
        raise not_recognised("info", bottom)
    up = _metrics(" ".join(t[layout.health_col + 1 :]), layout.top, top)
    down = _metrics(" ".join(b[layout.bus_col + 1 :]), layout.bottom, bottom)
    health = t[layout.health_col]
    if not health:
        raise not_recognised("info", top)
    mem_used, mem_total = _pair(down, "memory")
    hbm_used, hbm_total = _pair(down, "hbm")
    huge_used, huge_total = _pair(up, "hugepage")
    power, temp, aicore = _pick(up, "power"), _pick(up, "temp"), _pick(down, "aicore", "util")
    return Chip(
        npu=int(ident[0]),
        chip=int(chip_ids[0]) if chip_ids else 0,
        device=int(chip_ids[1]) if len(chip_ids) > 1 else None,
        name=" ".join(ident[1:]),
        health=health,
        power_w=power if isinstance(power, float) else None,
        temp_c=temp if isinstance(temp, int) else None,
        aicore_pct=aicore if isinstance(aicore, int) else None,
        memory_used_mb=mem_used,
        memory_total_mb=mem_total,
        hbm_used_mb=hbm_used,
        hbm_total_mb=hbm_total,
        bus_id=None if bus in ("NA", "N/A", "-", "") else bus,
        hugepages_used=huge_used,
        hugepages_total=huge_total,
    )


@dataclass
class _ProcLayout:
    """Column positions of the process table, from its header row."""

    pid_col: int = 1
    name_col: int = 2
    mem_col: int = 3
    container_col: int | None = None
    to_mb: float = 1.0


_UNIT_TO_MB = {"b": 1 / (1024 * 1024), "kb": 1 / 1024, "mb": 1.0, "gb": 1024.0}


def _proc_layout(line: str) -> _ProcLayout:
    layout = _ProcLayout()
    for i, cell in enumerate(_cells(line)):
        low = cell.lower()
        if "container" in low:
            layout.container_col = i
        elif "memory" in low:
            layout.mem_col = i
            unit = re.search(r"\((\w+)\)", low)
            if unit and unit.group(1) in _UNIT_TO_MB:
                layout.to_mb = _UNIT_TO_MB[unit.group(1)]
        elif "name" in low:
            layout.name_col = i
        elif "process" in low and "id" in low:
            layout.pid_col = i
    return layout


def _process(line: str, layout: _ProcLayout) -> NpuProcess:
    cells = _cells(line)
    if len(cells) <= max(layout.pid_col, layout.mem_col, layout.name_col):
        raise not_recognised("info", line)
    ids = " ".join(cells[: layout.pid_col]).split()
    pid, mem = cells[layout.pid_col], cells[layout.mem_col]
    if not ids or not all(x.isdigit() for x in ids) or not pid.isdigit():
        raise not_recognised("info", line)
    try:
        memory = float(mem)
    except ValueError:
        raise not_recognised("info", line) from None
    container: int | None = None
    if layout.container_col is not None and layout.container_col < len(cells):
        raw = cells[layout.container_col]
        container = int(raw) if raw.isdigit() else None
    return NpuProcess(
        npu=int(ids[0]),
        chip=int(ids[1]) if len(ids) > 1 else 0,
        pid=int(pid),
        name=cells[layout.name_col],
        memory_mb=round(memory * layout.to_mb),
        container_pid=container,
    )


def _group(chips: Sequence[Chip]) -> tuple[Npu, ...]:
    """Chips -> NPUs, merging the repeated NPU rows of multi-chip cards."""
    order: list[int] = []
    by_id: dict[int, list[Chip]] = {}
    for chip in chips:
        if chip.npu not in by_id:
            order.append(chip.npu)
            by_id[chip.npu] = []
        by_id[chip.npu].append(chip)
    return tuple(Npu(i, tuple(by_id[i])) for i in order)


def parse_info(text: str) -> NpuReading:
    """Parse ``npu-smi info``: device table, process table, surrounding warnings.

    Raises NpuSmiError quoting the offending line when the output is an error
    (``dcmi module initialize failed``), help text, or a row it cannot read.
    """
    layout = _Layout()
    proc_layout: _ProcLayout | None = None
    tool = driver = None
    rows: list[str] = []
    procs: list[NpuProcess] = []
    warnings: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _BORDER.match(line):
            continue
        if not line.startswith("|"):
            warnings.append(line)
            continue
        joined = " ".join(_cells(line))
        low = joined.lower()
        if version := _VERSION.search(joined):
            tool, driver = version.group(1), version.group(2)
        elif "process id" in low and ("process name" in low or "memory" in low):
            proc_layout = _proc_layout(line)
        elif "health" in low and "name" in low:
            layout.health_col = _header_col(line, "health")
            layout.top = tuple(_LABEL.findall(_cells(line)[-1])) or _DEFAULT_TOP
        elif "bus-id" in low:
            layout.bus_col = _header_col(line, "bus-id")
            layout.bottom = tuple(_LABEL.findall(_cells(line)[-1])) or _DEFAULT_BOTTOM
        elif proc_layout is not None:
            if not _NO_PROCS.search(joined):
                procs.append(_process(line, proc_layout))
        else:
            rows.append(line)
    if not rows:
        raise not_recognised("info", error_line(warnings, "no NPU rows found"))
    if len(rows) % 2:
        raise not_recognised("info", rows[-1])
    chips = [_chip(rows[i], rows[i + 1], layout) for i in range(0, len(rows), 2)]
    return NpuReading(
        npus=_group(chips),
        processes=tuple(procs),
        tool_version=tool,
        driver_version=driver,
        has_process_table=proc_layout is not None,
        warnings=tuple(warnings),
    )


def _header_col(line: str, word: str) -> int:
    cells = _cells(line)
    return next((i for i, c in enumerate(cells) if word in c.lower()), 1)


def parse_any(text: str) -> object:
    """Parse any supported npu-smi output, recognising its form from the text.

    Returns an NpuReading (``info``), a tuple of ChipMapping (``info -m``),
    a Topology (``-t topo``), a HealthReport (``-t health``), a tuple of
    ``(npu, chip count)`` (``-l``) or an NpuDetail (other ``-t`` forms).
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    if any(ln.startswith(("|", "+")) for ln in lines):
        return parse_info(text)
    if re.search(r"NPU\s*ID.*Chip\s*Logic", first, re.IGNORECASE):
        return parse_map(text)
    if first.upper().startswith("NPU0") or "CPU Affinity" in first:
        return parse_topo(text)
    if first.lower().startswith("health status"):
        return parse_health(text)
    if first.lower().startswith("total count"):
        return parse_list(text)
    if ":" in first and not first.lower().startswith("usage"):
        return parse_detail(text)
    raise not_recognised("", error_line(lines))
