"""The host's Ascend software versions (files) and the NPU table (the daemon's monitor view)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qwend.verify.packages import describe
from qwend.verify.report import Section, Table, Verdict

ASCEND_ROOT = Path("/usr/local/Ascend")
UNKNOWN = "unknown"


def _key_values(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {k.strip().lower(): v.strip().strip('"') for k, _, v in pairs}


def versions(root: Path = ASCEND_ROOT) -> dict[str, str]:
    """Driver, firmware and CANN toolkit versions from their ``version.info`` files."""
    driver = _key_values(root / "driver" / "version.info").get("version", UNKNOWN)
    firmware = _key_values(root / "firmware" / "version.info").get("version", UNKNOWN)
    cann = UNKNOWN
    latest = root / "ascend-toolkit" / "latest"
    for info in sorted(latest.glob("*/ascend_toolkit_install.info")) if latest.is_dir() else []:
        cann = _key_values(info).get("version", cann)
    if cann == UNKNOWN:
        cfg = _key_values(latest / "version.cfg")
        cann = cfg.get("toolkit_running_version", cfg.get("version", UNKNOWN)).strip("[]")
        cann = cann.split(":")[0] or UNKNOWN
    return {"driver": driver, "firmware": firmware, "CANN": cann}


def npu_rows(view: Mapping[str, Any] | None) -> tuple[list[tuple[str, ...]], list[str], str]:
    """(rows per chip of an NPU some lane uses, unhealthy chips, npu-smi version)."""
    reading = (view or {}).get("reading") or {}
    used = {n for npus in ((view or {}).get("lane_npus") or {}).values() for n in npus}
    lanes_on: dict[int, list[str]] = {}
    for lane, npus in ((view or {}).get("lane_npus") or {}).items():
        for n in npus:
            lanes_on.setdefault(int(n), []).append(str(lane))
    rows: list[tuple[str, ...]] = []
    bad: list[str] = []
    for npu in reading.get("npus") or ():
        if npu.get("id") not in used:
            continue
        for chip in npu.get("chips") or ():
            hbm = f"{chip.get('hbm_used_mb')}/{chip.get('hbm_total_mb')} MB"
            health = str(chip.get("health", UNKNOWN))
            where = f"{npu['id']}.{chip.get('chip', 0)}"
            rows.append(
                (
                    where,
                    str(chip.get("name", "")),
                    health,
                    hbm,
                    ", ".join(sorted(lanes_on.get(int(npu["id"]), []))),
                )
            )
            if health.upper() != "OK":
                bad.append(f"NPU {where} health {health}")
    return rows, bad, str(reading.get("tool_version") or UNKNOWN)


def environment_section(
    view: Mapping[str, Any] | None,
    monitor_enabled: bool,
    host_versions: Mapping[str, str],
    lane_versions: Sequence[tuple[str, ...]],
    packages: Mapping[str, Mapping[str, str]] | None = None,
) -> Section:
    """NPU health per NPU used, driver/firmware/CANN, backend versions per lane.

    ``lane_versions`` rows are (lane, variant, /version, served model, simulated "yes"/"no");
    ``packages`` maps a lane to what its own interpreter reports (qwend.verify.interpreter).
    """
    rows, bad, tool = npu_rows(view)
    found = packages or {}
    lane_rows = tuple(
        (*row[:3], describe(found.get(row[0], {})), *row[3:]) for row in lane_versions
    )
    data = {
        "packages": {
            row[0]: {**found.get(row[0], {}), "simulated": row[-1] == "yes"}
            for row in lane_versions
        }
    }
    tables = [
        Table(("component", "version"), (("npu-smi", tool), *sorted(host_versions.items()))),
        Table(
            (
                "lane",
                "variant",
                "backend (/version)",
                "backend packages (lane's interpreter)",
                "served model",
                "simulated",
            ),
            lane_rows,
        ),
    ]
    notes = []
    # The control API answers "enabled" for a monitor that exists; the view itself says
    # whether it runs (disabled in the config, or no npu-smi) and why not.
    error = (view or {}).get("error")
    if rows:
        tables.insert(0, Table(("NPU.chip", "chip", "health", "HBM", "lanes"), tuple(rows)))
    elif not monitor_enabled or (view or {}).get("enabled") is False:
        why = f" ({error})" if error else ""
        notes.append(f"the daemon's NPU monitor is not running{why}: no npu-smi health")
    elif error:
        notes.append(f"no npu-smi reading: {error}")
    else:
        notes.append("npu-smi reported no NPU used by a lane")
    if bad:
        return Section(
            "Environment", Verdict.FAIL, "; ".join(bad), tuple(tables), tuple(notes), data
        )
    if rows:
        return Section(
            "Environment",
            Verdict.PASS,
            f"{len(rows)} chip(s) in use, health OK",
            tuple(tables),
            tuple(notes),
            data,
        )
    return Section(
        "Environment", Verdict.INFO, "NPU health not available", tuple(tables), tuple(notes), data
    )
