"""Property: tables drawn in the documented npu-smi layouts parse back to what was drawn.

The generator varies what drivers vary: column widths, spacing inside cells
(``used / total`` with or without spaces), a Device/Phy-ID column, the
Hugepages and HBM columns, the A5 four-cell layout, multi-chip NPUs, NA/-
values, process tables with empty names, a byte memory unit and a fifth
``Process id in container`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from qwend.npu.parse import Chip, NpuProcess, parse_info


@dataclass(frozen=True)
class Layout:
    a5: bool
    device_col: bool
    hugepages: bool
    hbm: bool
    widths: tuple[int, int, int]
    gaps: tuple[int, ...]
    pair_style: str
    proc_bytes: bool
    container_col: bool


def layouts() -> st.SearchStrategy[Layout]:
    return st.builds(
        Layout,
        a5=st.booleans(),
        device_col=st.booleans(),
        hugepages=st.booleans(),
        hbm=st.booleans(),
        widths=st.tuples(st.integers(20, 32), st.integers(13, 18), st.integers(50, 72)),
        gaps=st.tuples(*[st.integers(1, 9)] * 3),
        pair_style=st.sampled_from(["{} / {}", "{}/{}", "{}/ {}", "{} /{}", "{:<5}/ {}"]),
        proc_bytes=st.booleans(),
        container_col=st.booleans(),
    )


NAMES = st.sampled_from(["910A", "910B3", "Ascend910", "310P3", "xxx", "Ascend950DT", "B"])
HEALTH = st.sampled_from(["OK", "Warning", "Alarm", "Critical"])
MAYBE_INT = st.one_of(st.none(), st.integers(0, 99999))


@st.composite
def chips_for(draw: st.DrawFn, npu: int, count: int, layout: Layout, base: int) -> list[Chip]:
    name = draw(NAMES)
    out = []
    for i in range(count):
        hbm_total = draw(st.integers(1, 131072)) if layout.hbm else None
        power = draw(st.one_of(st.none(), st.integers(0, 9999).map(lambda x: x / 10)))
        bus = draw(st.one_of(st.none(), st.integers(0, 255).map(lambda b: f"0000:{b:02X}:00.0")))
        huge = draw(st.integers(0, 2000)) if layout.hugepages else None
        out.append(
            Chip(
                npu=npu,
                chip=0 if layout.a5 else i,
                device=base + i if layout.device_col and not layout.a5 else None,
                name=name,
                health=draw(HEALTH),
                power_w=power,
                temp_c=draw(st.one_of(st.none(), st.integers(0, 120))),
                aicore_pct=draw(st.integers(0, 100)),
                memory_used_mb=draw(st.integers(0, 99999)),
                memory_total_mb=draw(st.integers(0, 99999)),
                hbm_used_mb=draw(st.integers(0, 131072)) if layout.hbm else None,
                hbm_total_mb=hbm_total,
                bus_id=bus,
                hugepages_used=huge,
                hugepages_total=huge and huge + draw(st.integers(0, 50)),
            )
        )
    return out


@st.composite
def readings(draw: st.DrawFn) -> tuple[Layout, list[Chip], list[NpuProcess] | None]:
    layout = draw(layouts())
    ids = draw(st.lists(st.integers(0, 2100), min_size=1, max_size=5, unique=True))
    chips: list[Chip] = []
    for npu in ids:
        count = 1 if layout.a5 else draw(st.integers(1, 4))
        chips += draw(chips_for(npu, count, layout, len(chips)))
    procs: list[NpuProcess] | None = None
    if draw(st.booleans()):
        procs = []
        for chip in chips:
            for _ in range(draw(st.integers(0, 3))):
                procs.append(
                    NpuProcess(
                        npu=chip.npu,
                        chip=chip.chip,
                        pid=draw(st.integers(1, 4_000_000)),
                        name=draw(st.from_regex(r"[a-z0-9_.]{0,15}", fullmatch=True)),
                        memory_mb=draw(st.integers(0, 65536)),
                        container_pid=draw(st.integers(1, 999)) if layout.container_col else None,
                    )
                )
    return layout, chips, procs


def val(x: object, none: str = "NA") -> str:
    return none if x is None else str(x)


def row(cells: list[str], widths: list[int]) -> str:
    return "|" + "|".join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + "|"


def metrics(items: list[str], gaps: tuple[int, ...]) -> str:
    return "".join(item + " " * gaps[i % len(gaps)] for i, item in enumerate(items)).rstrip()


def draw_table(layout: Layout, chips: list[Chip], procs: list[NpuProcess] | None) -> str:
    w0, w1, w2 = layout.widths
    top_labels = ["Power(W)", "Temp(C)"] + (["Hugepages-Usage(page)"] if layout.hugepages else [])
    bottom_labels = ["NPU Util(%)" if layout.a5 else "AICore(%)", "Memory-Usage(MB)"]
    bottom_labels += ["HBM-Usage(MB)"] if layout.hbm else []
    pair = layout.pair_style.format
    widths = [6, w0 - 9, w1, w2] if layout.a5 else [w0, w1, w2]
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    if layout.a5:
        lines = [
            border,
            row(["NPU ID", "Name", "Health", metrics(top_labels, (4,))], widths),
            row(["", "", "Bus-Id", metrics(bottom_labels, (4,))], widths),
        ]
    else:
        second = "Chip    Device" if layout.device_col else "Chip"
        lines = [
            border,
            row(["NPU   Name", "Health", metrics(top_labels, (4,))], widths),
            row([second, "Bus-Id", metrics(bottom_labels, (4,))], widths),
        ]
    lines.append(border.replace("-", "="))
    for chip in chips:
        top = [val(chip.power_w, "-"), val(chip.temp_c)]
        if layout.hugepages:
            top.append(pair(val(chip.hugepages_used, "0"), val(chip.hugepages_total, "0")))
        bottom = [str(chip.aicore_pct), pair(chip.memory_used_mb, chip.memory_total_mb)]
        if layout.hbm:
            bottom.append(pair(chip.hbm_used_mb, chip.hbm_total_mb))
        up, down = metrics(top, layout.gaps), metrics(bottom, layout.gaps)
        bus = val(chip.bus_id)
        if layout.a5:
            lines.append(row([str(chip.npu), chip.name, chip.health, up], widths))
            lines.append(row(["", "", bus, down], widths))
        else:
            ident = f"{chip.chip}       {chip.device}" if layout.device_col else str(chip.chip)
            lines.append(row([f"{chip.npu}     {chip.name}", chip.health, up], widths))
            lines.append(row([ident, bus, down], widths))
        lines.append(border)
    if procs is not None:
        lines += draw_procs(layout, chips, procs)
    return "\n".join(lines) + "\n"


def draw_procs(layout: Layout, chips: list[Chip], procs: list[NpuProcess]) -> list[str]:
    unit = "B" if layout.proc_bytes else "MB"
    head = ["NPU ID" if layout.a5 else "NPU     Chip", "Process id", "Process name"]
    head.append(f"Process memory({unit})")
    head += ["Process id in container"] if layout.container_col else []
    widths = [max(len(h), 16) for h in head]
    total = sum(widths) + 3 * len(widths) - 1
    lines = ["+" + "-" * total + "+", row(head, widths), "+" + "=" * total + "+"]
    for npu in dict.fromkeys(c.npu for c in chips):
        mine = [p for p in procs if p.npu == npu]
        if not mine:
            lines.append(row([f"No running processes found in NPU {npu}"], [total - 2]))
        for p in mine:
            ident = str(p.npu) if layout.a5 else f"{p.npu}       {p.chip}"
            mem = p.memory_mb * 1024 * 1024 if layout.proc_bytes else p.memory_mb
            cells = [ident, str(p.pid), p.name, str(mem)]
            cells += [val(p.container_pid)] if layout.container_col else []
            lines.append(row(cells, widths))
        lines.append("+" + "=" * total + "+")
    return lines


@settings(max_examples=200, deadline=None)
@given(readings())
def test_drawn_tables_round_trip(case: tuple[Layout, list[Chip], list[NpuProcess] | None]) -> None:
    layout, chips, procs = case
    table = draw_table(layout, chips, procs)
    reading = parse_info(table)
    # chips and processes are generated NPU by NPU, in table order
    assert list(reading.chips) == chips
    assert [n.id for n in reading.npus] == list(dict.fromkeys(c.npu for c in chips))
    assert list(reading.processes) == (procs or [])
    assert reading.has_process_table is (procs is not None)
