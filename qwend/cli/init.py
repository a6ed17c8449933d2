"""``qwenctl init``: write a shipped preset configuration, or list the presets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwend.cli.exit import ExitStatus
from qwend.config.load import check_cluster, check_config
from qwend.config.presets import (
    ClusterPreset,
    PresetError,
    find_cluster_preset,
    find_preset,
    install_cluster_preset,
    install_preset,
    list_cluster_presets,
    list_presets,
    stray_lane_files,
)
from qwend.config.presetvalues import PresetValueError, preset_values
from qwend.text import table

DEFAULT_DIR = Path("/etc/qwend")
"""Where ``init`` writes one host's configuration unless told otherwise."""


@dataclass(frozen=True)
class InitRequest:
    """What ``qwenctl init --preset`` was asked to write."""

    name: str
    target: Path | None
    """``--dir``; None: /etc/qwend (one host's files only)."""
    force: bool = False
    host: str | None = None
    """``--host``: only this host's files of a multi-host preset."""
    addresses: Sequence[str] = ()
    """``--address HOST=ADDRESS``, repeated."""
    nics: Sequence[str] = ()
    """``--nic IFNAME`` or ``--nic HOST=IFNAME``, repeated."""


def list_text() -> tuple[list[dict[str, Any]], str]:
    """(JSON-able list, human table) of the shipped presets, multi-host ones last."""
    presets = list_presets()
    clusters = list_cluster_presets()
    data: list[dict[str, Any]] = [
        {"name": p.name, "summary": p.summary, "hosts": [], "files": [str(f) for f in p.files]}
        for p in presets
    ]
    data += [
        {
            "name": c.name,
            "summary": c.summary,
            "hosts": list(c.hosts),
            "files": [f"{h}/{f}" for h in c.hosts for f in c.files(h)],
        }
        for c in clusters
    ]
    rows = [(p.name, "1", p.summary) for p in presets]
    rows += [(c.name, f"{len(c.hosts)}: {', '.join(c.hosts)}", c.summary) for c in clusters]
    return data, table(("PRESET", "HOSTS", "WHAT"), rows)


def run_cluster_init(
    preset: ClusterPreset, request: InitRequest
) -> tuple[int, dict[str, Any], str]:
    """Write a multi-host preset: one host's files (``--host``) or every host's."""
    if request.host is None and request.target is None:
        msg = (
            f"{preset.name} is a preset for {len(preset.hosts)} hosts"
            f" ({', '.join(preset.hosts)}): pass --host NAME to write that host's files into"
            f" {DEFAULT_DIR} (or --dir), or --dir DIR to write every host's into DIR/HOST/"
        )
        return ExitStatus.USAGE, {"ok": False, "error": msg}, msg
    target = request.target or DEFAULT_DIR
    try:
        values = preset_values(preset.hosts, request.addresses, request.nics)
        written = install_cluster_preset(
            preset, values, target, host=request.host, force=request.force
        )
    except PresetValueError as error:
        return ExitStatus.USAGE, {"ok": False, "error": str(error)}, str(error)
    except PresetError as error:
        status = ExitStatus.NOT_FOUND if "has no host" in str(error) else ExitStatus.CONFLICT
        return status, {"ok": False, "error": str(error)}, str(error)
    except OSError as error:
        msg = f"cannot write {target}: {error}"
        return ExitStatus.ERROR, {"ok": False, "error": msg}, msg
    dirs = {host: files[0].parent for host, files in written.items()}
    lines = [f"wrote preset {preset.name}:"]
    for host, files in written.items():
        lines.append(f"  {host}: {dirs[host]}")
        lines += [f"    {path}" for path in files]
    valid: bool | None = None
    if request.host is None:
        check = check_cluster([dirs[h] for h in preset.hosts])
        valid = check.ok
        shown = " ".join(str(dirs[h]) for h in preset.hosts)
        lines.append(f"copy each HOST/ to that host's {DEFAULT_DIR}; check them all:")
        lines.append(
            f"  qwend check-config --cluster {shown}"
            + ("" if valid else "  (not consistent yet: run it to see why)")
        )
    else:
        valid = check_config(dirs[request.host]).ok
        lines.append(
            f"check: qwend check-config {dirs[request.host] / 'qwend.toml'}"
            + ("" if valid else "  (not valid yet)")
            + "; with every host's files: qwend check-config --cluster DIR..."
        )
    data = {
        "ok": True,
        "preset": preset.name,
        "hosts": {
            h: {"dir": str(dirs[h]), "written": [str(p) for p in f]} for h, f in written.items()
        },
        "valid": valid,
    }
    return ExitStatus.OK, data, "\n".join(lines)


def run_init(request: InitRequest) -> tuple[int, dict[str, Any], str]:
    """Copy preset ``request.name``: (exit status, JSON-able result, human text)."""
    cluster = find_cluster_preset(request.name)
    if cluster is not None:
        return run_cluster_init(cluster, request)
    name, force = request.name, request.force
    target = request.target or DEFAULT_DIR
    if request.host is not None or request.addresses or request.nics:
        msg = f"{name} is a single-host preset: --host, --address and --nic are for multi-host ones"
        return ExitStatus.USAGE, {"ok": False, "error": msg}, msg
    try:
        preset = find_preset(name)
    except PresetError as error:
        return ExitStatus.NOT_FOUND, {"ok": False, "error": str(error)}, str(error)
    try:
        written = install_preset(preset, target, force=force)
    except PresetError as error:
        return ExitStatus.CONFLICT, {"ok": False, "error": str(error)}, str(error)
    except OSError as error:
        msg = f"cannot write {target}: {error}"
        return ExitStatus.ERROR, {"ok": False, "error": msg}, msg
    stray = stray_lane_files(preset, target)
    check = check_config(target / "qwend.toml")
    lines = [f"wrote preset {preset.name} to {target}:"]
    lines += [f"  {path}" for path in written]
    if stray:
        lines.append("also in lanes.d and still loaded (remove them unless they belong):")
        lines += [f"  {path}" for path in stray]
    lines.append(
        f"check: qwend check-config {target / 'qwend.toml'}"
        + ("" if check.ok else f"  (not valid yet: {len(check.issues)} problem(s))")
    )
    data = {
        "ok": True,
        "preset": preset.name,
        "dir": str(target),
        "written": [str(p) for p in written],
        "stray": [str(p) for p in stray],
        "valid": check.ok,
    }
    return ExitStatus.OK, data, "\n".join(lines)
