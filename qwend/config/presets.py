"""Shipped presets: ready configurations (``qwend.toml`` + ``lanes.d/``) for known hosts.

Each preset is a directory of the ``qwend.presets`` package data (installed by the Debian
package under /usr/share/qwend/presets too), so ``qwenctl init --preset NAME`` works the
same from the package, a virtualenv or a clone. ``install_preset`` copies one into a
configuration directory, refusing to overwrite an existing file unless told to.
"""

from __future__ import annotations

import importlib.resources
import shutil
from dataclasses import dataclass
from pathlib import Path

from qwend.errors import QwendError

PRESETS_PACKAGE = "qwend.presets"


class PresetError(QwendError):
    """A preset that does not exist, or a copy that would overwrite files."""


@dataclass(frozen=True)
class Preset:
    """One shipped preset."""

    name: str
    path: Path
    summary: str
    """The first comment line of its qwend.toml."""

    @property
    def files(self) -> tuple[Path, ...]:
        """qwend.toml and every lane file, relative to the preset directory."""
        lanes = sorted(p.relative_to(self.path) for p in (self.path / "lanes.d").glob("*.toml"))
        return (Path("qwend.toml"), *lanes)


def presets_root() -> Path:
    """The directory holding the presets (package data of ``qwend.presets``)."""
    return Path(str(importlib.resources.files(PRESETS_PACKAGE)))


def _summary(config: Path) -> str:
    for line in config.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("# ").strip()
        if line.startswith("#") and text:
            return text
    return ""


def list_presets(root: Path | None = None) -> list[Preset]:
    """Every preset, by name."""
    root = presets_root() if root is None else root
    return [
        Preset(d.name, d, _summary(d / "qwend.toml"))
        for d in sorted(root.iterdir())
        if d.is_dir() and (d / "qwend.toml").is_file()
    ]


def find_preset(name: str, root: Path | None = None) -> Preset:
    """The preset called ``name``; ``PresetError`` listing the others when there is none."""
    presets = list_presets(root)
    for preset in presets:
        if preset.name == name:
            return preset
    names = ", ".join(p.name for p in presets)
    raise PresetError(f'no preset "{name}"; presets: {names} (qwenctl init --list)')


def install_preset(preset: Preset, target: Path, *, force: bool = False) -> list[Path]:
    """Copy ``preset`` into ``target``; the files written. Nothing is written on refusal.

    Without ``force`` any existing file of the preset's set is an error naming them all.
    Other files already in ``target`` (other lane files) are left alone, and listed as a
    warning by the caller: an old lanes.d file would still be loaded.
    """
    files = preset.files
    existing = [target / f for f in files if (target / f).exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing)
        raise PresetError(f"would overwrite {shown}; pass --force to replace them")
    written = []
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(preset.path / relative, destination)
        written.append(destination)
    return written


def stray_lane_files(preset: Preset, target: Path) -> list[Path]:
    """Lane files in ``target/lanes.d`` that the preset does not have (still loaded)."""
    ours = {f.name for f in preset.files}
    lanes = target / "lanes.d"
    if not lanes.is_dir():
        return []
    return sorted(p for p in lanes.glob("*.toml") if p.name not in ours)
