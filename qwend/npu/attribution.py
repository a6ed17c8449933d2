"""What an npu-smi reading means for lanes (pure): whose process is where, which NPU is sick."""

from __future__ import annotations

from collections.abc import Mapping, Set

from qwend.npu.model import LaneProcess, NpuReading


def attribute(
    reading: NpuReading,
    lane_trees: Mapping[str, Set[int]],
    lane_npus: Mapping[str, tuple[int, ...]],
) -> tuple[LaneProcess, ...]:
    """Attribute every process row to the lane whose process tree holds its pid.

    A process that holds memory on a lane's NPU but is not in that lane's tree
    is *foreign* to that lane (a leftover of a previous run, another user's
    job, or a lane configured on the same NPU).
    """
    owner = {pid: lane for lane, pids in lane_trees.items() for pid in pids}
    out = []
    for proc in reading.processes:
        device = reading.process_device(proc)
        lane = owner.get(proc.pid)
        foreign = tuple(
            name
            for name, npus in lane_npus.items()
            if device in npus and name != lane and proc.memory_mb > 0
        )
        out.append(LaneProcess(proc, device, lane, foreign))
    return tuple(out)


def degraded(reading: NpuReading, lane_npus: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Lane -> reason, for each lane with an NPU whose health is not OK (or that is missing)."""
    reasons: dict[str, str] = {}
    for lane, npus in lane_npus.items():
        problems = []
        for device in npus:
            chip = reading.chip_at(device)
            if chip is None:
                problems.append(f"NPU {device} not reported by npu-smi")
            elif not chip.ok:
                problems.append(f"NPU {device} health {chip.health}")
        if problems:
            reasons[lane] = "; ".join(problems)
    return reasons


def holders(
    reading: NpuReading, npus: tuple[int, ...], own: Set[int] = frozenset()
) -> tuple[LaneProcess, ...]:
    """Processes (not in ``own``) holding memory on any of ``npus``."""
    found = []
    for proc in reading.processes:
        device = reading.process_device(proc)
        if device in npus and proc.pid not in own and proc.memory_mb > 0:
            found.append(LaneProcess(proc, device, None))
    return tuple(found)


def describe_holders(found: tuple[LaneProcess, ...], owners: Mapping[int, str]) -> str:
    """``pid 1234 (python3, lane old) holds 30000 MB on NPU 3, ...``."""
    parts = []
    for item in found:
        p = item.process
        who = p.name or "no name"
        lane = owners.get(p.pid)
        if lane:
            who += f", lane {lane}"
        parts.append(f"pid {p.pid} ({who}) holds {p.memory_mb} MB on NPU {item.device}")
    return ", ".join(parts)
