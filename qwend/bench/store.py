"""Saved results: one JSON file per run under the results directory."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from qwend.bench.results import BenchResult, result_from_dict
from qwend.errors import QwendError
from qwend.files import atomic_write


class ResultNotFound(QwendError):
    """No saved result by that name or path."""


def results_dir(env: Mapping[str, str], explicit: str | None = None) -> Path:
    """``--results-dir``, else ``$QWEND_BENCH_DIR``, else ``$XDG_STATE_HOME/qwend/bench``.

    The bench runs as the operator, not as the daemon: its results live in the
    operator's state directory (``~/.local/state/qwend/bench`` by default).
    """
    if explicit:
        return Path(explicit).expanduser()
    if env.get("QWEND_BENCH_DIR"):
        return Path(env["QWEND_BENCH_DIR"]).expanduser()
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "state")
    return Path(state).expanduser() / "qwend" / "bench"


def save(directory: Path, result: BenchResult) -> Path:
    """Write ``result`` as ``<id>.json``; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.id}.json"
    atomic_write(path, (json.dumps(result.to_dict(), indent=1) + "\n").encode(), mode=0o644)
    return path


def load_path(path: Path) -> BenchResult:
    """Read one saved result; a malformed file is an error naming it."""
    try:
        return result_from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ResultNotFound(f"no saved result at {path}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultNotFound(f"{path} is not a qwenctl bench result: {exc}") from None


def load(directory: Path, ref: str) -> BenchResult:
    """A result by path, by id (file name without .json) or by a unique id prefix."""
    as_path = Path(ref).expanduser()
    if as_path.suffix == ".json" or os.sep in ref:
        return load_path(as_path)
    matches = sorted(directory.glob(f"{ref}*.json")) if directory.is_dir() else []
    exact = [m for m in matches if m.stem == ref]
    if exact or len(matches) == 1:
        return load_path((exact or matches)[0])
    if not matches:
        raise ResultNotFound(f"no saved result {ref!r} in {directory} (see `qwenctl bench list`)")
    names = ", ".join(m.stem for m in matches[:5])
    raise ResultNotFound(f"{ref!r} matches {len(matches)} results ({names}, ...); be more precise")


def listing(directory: Path) -> list[BenchResult]:
    """Every readable saved result, oldest first (unreadable files are skipped)."""
    out = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            out.append(load_path(path))
        except ResultNotFound:
            continue
    return sorted(out, key=lambda r: r.meta.started_at)


def latest(directory: Path, target: str, case: str) -> BenchResult | None:
    """The most recent saved result of ``target`` that ran ``case``."""
    found = [r for r in listing(directory) if r.meta.target == target and case in r.cases]
    return found[-1] if found else None
