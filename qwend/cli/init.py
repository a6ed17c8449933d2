"""``qwenctl init``: write a shipped preset configuration, or list the presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwend.cli.exit import ExitStatus
from qwend.config.load import check_config
from qwend.config.presets import (
    PresetError,
    find_preset,
    install_preset,
    list_presets,
    stray_lane_files,
)
from qwend.text import table


def list_text() -> tuple[list[dict[str, Any]], str]:
    """(JSON-able list, human table) of the shipped presets."""
    presets = list_presets()
    data = [
        {"name": p.name, "summary": p.summary, "files": [str(f) for f in p.files]} for p in presets
    ]
    return data, table(("PRESET", "WHAT"), [(p.name, p.summary) for p in presets])


def run_init(name: str, target: Path, *, force: bool) -> tuple[int, dict[str, Any], str]:
    """Copy preset ``name`` into ``target``: (exit status, JSON-able result, human text)."""
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
