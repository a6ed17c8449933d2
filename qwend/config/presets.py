"""Shipped presets: ready configurations (``qwend.toml`` + ``lanes.d/``) for known hosts.

Each preset is a directory of the ``qwend.presets`` package data (installed by the Debian
package under /usr/share/qwend/presets too), so ``qwenctl init --preset NAME`` works the
same from the package, a virtualenv or a clone. ``install_preset`` copies one into a
configuration directory, refusing to overwrite an existing file unless told to.

A multi-host preset (``cluster.toml`` with ``[preset] hosts``) holds one file set per
host, in a directory named after the host, with ``@address:HOST@`` / ``@nic:HOST@``
where the operator's values go (``qwend.config.presetvalues``); ``install_cluster_preset``
writes them filled in, every host's set or one host's.
"""

from __future__ import annotations

import importlib.resources
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qwend.config.presetvalues import fill
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


@dataclass(frozen=True)
class ClusterPreset:
    """One shipped multi-host preset: a file set per host."""

    name: str
    path: Path
    summary: str
    """The first comment line of its cluster.toml."""
    hosts: tuple[str, ...]
    """The hosts' ``[cluster] name``s, each a directory of the preset."""

    def files(self, host: str) -> tuple[Path, ...]:
        """qwend.toml and every lane file of ``host``, relative to its directory."""
        root = self.path / host
        lanes = sorted(p.relative_to(root) for p in (root / "lanes.d").glob("*.toml"))
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


def list_cluster_presets(root: Path | None = None) -> list[ClusterPreset]:
    """Every multi-host preset, by name."""
    root = presets_root() if root is None else root
    found = []
    for d in sorted(root.iterdir()):
        manifest = d / "cluster.toml"
        if d.is_dir() and manifest.is_file():
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
            hosts = tuple(str(h) for h in data["preset"]["hosts"])
            found.append(ClusterPreset(d.name, d, _summary(manifest), hosts))
    return found


def find_preset(name: str, root: Path | None = None) -> Preset:
    """The single-host preset called ``name``; ``PresetError`` listing every preset when
    there is none."""
    for preset in list_presets(root):
        if preset.name == name:
            return preset
    names = [p.name for p in list_presets(root)] + [p.name for p in list_cluster_presets(root)]
    raise PresetError(f'no preset "{name}"; presets: {", ".join(names)} (qwenctl init --list)')


def find_cluster_preset(name: str, root: Path | None = None) -> ClusterPreset | None:
    """The multi-host preset called ``name``; None when there is none of that name."""
    return next((p for p in list_cluster_presets(root) if p.name == name), None)


def install_cluster_preset(
    preset: ClusterPreset,
    values: Mapping[str, str],
    target: Path,
    *,
    host: str | None = None,
    force: bool = False,
) -> dict[str, list[Path]]:
    """Write ``preset`` filled with ``values``: ``host``'s files into ``target``, or
    (``host`` None) every host's into ``target/HOST``. Host -> files written. Nothing is
    written when a file would be overwritten without ``force`` or a value is missing."""
    if host is not None and host not in preset.hosts:
        hosts = ", ".join(preset.hosts)
        raise PresetError(f'preset {preset.name} has no host "{host}"; hosts: {hosts}')
    chosen = preset.hosts if host is None else (host,)
    plan: list[tuple[str, Path, str]] = []
    for name in chosen:
        directory = target if host is not None else target / name
        for relative in preset.files(name):
            source = preset.path / name / relative
            text = fill(source.read_text(encoding="utf-8"), values, f"{preset.name}/{name}")
            plan.append((name, directory / relative, text))
    existing = [path for _, path, _ in plan if path.exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing)
        raise PresetError(f"would overwrite {shown}; pass --force to replace them")
    written: dict[str, list[Path]] = {name: [] for name in chosen}
    for name, destination, text in plan:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
        written[name].append(destination)
    return written


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
