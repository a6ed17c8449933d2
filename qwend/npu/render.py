"""Human tables and JSON-able dicts of npu-smi readings and NPU monitor views (pure).

Used by ``qwenctl npus`` (the daemon's live view, sent as ``view_to_dict``; the
``*_from_dict`` inverses keep that wire form lossless) and ``qwenctl npus --parse FILE
[--json]`` (``parsed_to_dict`` and ``render_parsed``), which needs no daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from qwend.npu.parse import (
    Chip,
    ChipMapping,
    HealthReport,
    LaneProcess,
    Npu,
    NpuDetail,
    NpuProcess,
    NpuReading,
    NpuView,
    Topology,
)
from qwend.text import Cell, cell_text, table

# ---------------------------------------------------------------- dicts


def chip_to_dict(chip: Chip, device: int) -> dict[str, Any]:
    """A chip as a JSON-able dict (with its device index and main memory)."""
    out = asdict(chip)
    out.update(
        device_index=device,
        used_mb=chip.used_mb,
        total_mb=chip.total_mb,
        memory_kind="HBM" if chip.has_hbm else "DDR",
        ok=chip.ok,
    )
    return out


def reading_to_dict(reading: NpuReading) -> dict[str, Any]:
    """An ``npu-smi info`` reading as a JSON-able dict."""
    return {
        "tool_version": reading.tool_version,
        "driver_version": reading.driver_version,
        "npus": [
            {
                "id": npu.id,
                "name": npu.name,
                "health": npu.health,
                "chips": [chip_to_dict(c, reading.device_index(c.npu, c.chip)) for c in npu.chips],
            }
            for npu in reading.npus
        ],
        "processes": [
            {**asdict(p), "device_index": reading.process_device(p)} for p in reading.processes
        ],
        "has_process_table": reading.has_process_table,
        "warnings": list(reading.warnings),
    }


def _build(cls: Any, data: Mapping[str, Any]) -> Any:
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def reading_from_dict(data: Mapping[str, Any]) -> NpuReading:
    """Inverse of ``reading_to_dict``."""
    npus = tuple(
        Npu(int(n["id"]), tuple(_build(Chip, c) for c in n["chips"])) for n in data["npus"]
    )
    return NpuReading(
        npus=npus,
        processes=tuple(_build(NpuProcess, p) for p in data["processes"]),
        tool_version=data.get("tool_version"),
        driver_version=data.get("driver_version"),
        has_process_table=bool(data.get("has_process_table")),
        warnings=tuple(data.get("warnings", ())),
    )


def view_to_dict(view: NpuView) -> dict[str, Any]:
    """A monitor view as a JSON-able dict (what the control socket sends)."""
    return {
        "enabled": view.enabled,
        "reading": None if view.reading is None else reading_to_dict(view.reading),
        "taken_at": view.taken_at,
        "age_s": view.age_s,
        "stale": view.stale,
        "error": view.error,
        "processes": [
            {
                "process": asdict(p.process),
                "device": p.device,
                "lane": p.lane,
                "foreign_to": list(p.foreign_to),
            }
            for p in view.processes
        ],
        "lane_npus": {lane: list(npus) for lane, npus in view.lane_npus.items()},
        "degraded": dict(view.degraded),
    }


def view_from_dict(data: Mapping[str, Any]) -> NpuView:
    """Inverse of ``view_to_dict`` (qwenctl rebuilds the view it received)."""
    reading = data.get("reading")
    return NpuView(
        enabled=bool(data["enabled"]),
        reading=None if reading is None else reading_from_dict(reading),
        taken_at=data.get("taken_at"),
        age_s=data.get("age_s"),
        stale=bool(data.get("stale")),
        error=data.get("error"),
        processes=tuple(
            LaneProcess(
                _build(NpuProcess, p["process"]),
                int(p["device"]),
                p.get("lane"),
                tuple(p.get("foreign_to", ())),
            )
            for p in data.get("processes", ())
        ),
        lane_npus={k: tuple(v) for k, v in data.get("lane_npus", {}).items()},
        degraded=dict(data.get("degraded", {})),
    )


def parsed_to_dict(parsed: object) -> Any:
    """Any ``parse_any`` result as JSON-able data, tagged with its form."""
    if isinstance(parsed, NpuReading):
        return {"form": "info", **reading_to_dict(parsed)}
    if isinstance(parsed, Topology):
        return {"form": "topo", **asdict(parsed)}
    if isinstance(parsed, HealthReport):
        return {"form": "health", **asdict(parsed), "ok": parsed.ok}
    if isinstance(parsed, NpuDetail):
        return {
            "form": "detail",
            "npu": parsed.npu,
            "chip_count": parsed.chip_count,
            "fields": dict(parsed.fields),
            "chips": [{"chip": c.chip, "fields": dict(c.fields)} for c in parsed.chips],
            "mcu": dict(parsed.mcu),
        }
    if isinstance(parsed, tuple) and parsed and isinstance(parsed[0], ChipMapping):
        return {"form": "map", "chips": [asdict(m) for m in parsed]}
    if isinstance(parsed, tuple):
        return {"form": "list", "npus": [{"npu": n, "chip_count": c} for n, c in parsed]}
    raise TypeError(f"not a parse result: {type(parsed).__name__}")


# ---------------------------------------------------------------- text


def _memory(chip: Chip) -> str:
    used, total = chip.used_mb, chip.total_mb
    if used is None and total is None:
        return "-"
    kind = "HBM" if chip.has_hbm else "DDR"
    return f"{cell_text(used)} / {cell_text(total)} {kind}"


def _lanes_on(device: int, lane_npus: Mapping[str, tuple[int, ...]]) -> str:
    return ",".join(sorted(lane for lane, npus in lane_npus.items() if device in npus)) or "-"


def render_chips(
    reading: NpuReading, lane_npus: Mapping[str, tuple[int, ...]] | None = None
) -> str:
    """The NPU table: one line per chip."""
    headers = ["NPU", "Chip", "Dev", "Name", "Health", "Power(W)", "Temp(C)", "AICore%"]
    headers += ["Memory(MB)", "Bus-Id"] + (["Lanes"] if lane_npus is not None else [])
    rows = []
    for chip in reading.chips:
        device = reading.device_index(chip.npu, chip.chip)
        row: list[Cell] = [chip.npu, chip.chip, device, chip.name, chip.health]
        row += [chip.power_w, chip.temp_c, chip.aicore_pct, _memory(chip), chip.bus_id]
        if lane_npus is not None:
            row.append(_lanes_on(device, lane_npus))
        rows.append(row)
    return table(headers, rows)


def render_processes(reading: NpuReading) -> str:
    """The process table of a reading (no lanes: for ``--parse``)."""
    if not reading.processes:
        return "No processes on NPUs." if reading.has_process_table else "No process table."
    rows: list[list[Cell]] = [
        [p.npu, p.chip, reading.process_device(p), p.pid, p.name or "-", p.memory_mb]
        for p in reading.processes
    ]
    return table(["NPU", "Chip", "Dev", "PID", "Name", "Memory(MB)"], rows)


def render_reading(reading: NpuReading) -> str:
    """A parsed ``npu-smi info`` for people."""
    head = f"npu-smi {reading.tool_version or '?'}, driver {reading.driver_version or '?'}: "
    head += f"{len(reading.npus)} NPU(s), {len(reading.chips)} chip(s)"
    parts = [head, "", render_chips(reading), "", render_processes(reading)]
    parts += [f"note: {w}" for w in reading.warnings]
    return "\n".join(parts)


def _who(p: LaneProcess) -> str:
    if p.lane and p.foreign_to:
        return f"{p.lane} (also on NPUs of {', '.join(p.foreign_to)})"
    if p.lane:
        return p.lane
    if p.foreign_to:
        return f"FOREIGN on {', '.join(p.foreign_to)}"
    return "-"


def render_view(view: NpuView) -> str:
    """The monitor's view for ``qwenctl npus``: NPUs, processes with their lanes, warnings."""
    if not view.enabled:
        return f"NPU monitor off: {view.error or 'disabled'}"
    if view.reading is None:
        return f"No NPU reading yet{': ' + view.error if view.error else ''}"
    age = f"{view.age_s:.1f} s old" if view.age_s is not None else "age unknown"
    head = f"npu-smi {view.reading.tool_version or '?'}: reading {age}"
    lines = [f"STALE ({view.error or 'too old'}) - {head}" if view.stale else head, ""]
    lines.append(render_chips(view.reading, view.lane_npus))
    lines.append("")
    if view.processes:
        rows: list[list[Cell]] = [
            [
                p.process.npu,
                p.process.chip,
                p.device,
                p.process.pid,
                p.process.name or "-",
                p.process.memory_mb,
                _who(p),
            ]
            for p in view.processes
        ]
        lines.append(table(["NPU", "Chip", "Dev", "PID", "Name", "Memory(MB)", "Lane"], rows))
    else:
        lines.append("No processes on NPUs.")
    for lane, reason in sorted(view.degraded.items()):
        lines.append(f"lane {lane} degraded: {reason}")
    for lane in sorted(view.lane_npus):
        for p in view.foreign_on(lane):
            lines.append(
                f"lane {lane}: pid {p.process.pid} ({p.process.name or 'no name'}) is not the "
                f"lane's and holds {p.process.memory_mb} MB on NPU {p.device}"
            )
    return "\n".join(lines)


def render_parsed(parsed: object) -> str:
    """Any ``parse_any`` result for people."""
    if isinstance(parsed, NpuReading):
        return render_reading(parsed)
    data = parsed_to_dict(parsed)
    if data["form"] == "map":
        return table(
            ["NPU", "Chip", "Logic ID", "Name"],
            [[m["npu"], m["chip"], m["logic_id"], m["name"]] for m in data["chips"]],
        )
    if data["form"] == "list":
        return table(["NPU", "Chips"], [[n["npu"], n["chip_count"]] for n in data["npus"]])
    if isinstance(parsed, Topology):
        rows = [
            [n, *links, cpu]
            for n, links, cpu in zip(parsed.npus, parsed.links, parsed.cpu_affinity, strict=True)
        ]
        return table(["", *parsed.npus, "CPU Affinity"], rows)
    if isinstance(parsed, HealthReport):
        lines = [f"Health: {parsed.status}"]
        lines += [f"Error code: {c}" for c in parsed.error_codes]
        lines += [f"  {i}" for i in parsed.information]
        return "\n".join(lines)
    assert isinstance(parsed, NpuDetail)
    lines = [f"NPU {cell_text(parsed.npu)}, {cell_text(parsed.chip_count)} chip(s)"]
    lines += [f"  {k}: {v}" for k, v in parsed.fields]
    for chip in parsed.chips:
        lines.append(f"Chip {chip.chip}")
        lines += [f"  {k}: {v}" for k, v in chip.fields]
    if parsed.mcu:
        lines.append("MCU")
        lines += [f"  {k}: {v}" for k, v in parsed.mcu]
    return "\n".join(lines)
