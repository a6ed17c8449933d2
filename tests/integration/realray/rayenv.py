"""Where the provisioned Ray lives, and how to find every process of a Ray cluster.

``provision.sh`` (``make real-ray``) fills the cache; without it the tests skip, unless
``QWEND_REAL_REQUIRED=1`` (set by ``make real-ray`` and so by CI) makes it a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.real.backend import cache_dir

HERE = Path(__file__).parent
ENGINE = HERE / "ray_engine.py"


def ray_venv() -> Path:
    """The Ray virtualenv (``provision.sh``): skip, or fail under ``make real-ray``."""
    venv = cache_dir() / "ray-venv"
    if (venv / "bin" / "ray").exists():
        return venv
    message = f"Ray not provisioned at {venv}: run `make real-ray`"
    if os.environ.get("QWEND_REAL_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Found:
    """A live process that belongs to a Ray cluster under test."""

    pid: int
    pgid: int
    sid: int
    cmdline: str
    why: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgid, sid) from /proc/PID/stat; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[2]), int(fields[3])


def ray_processes(venv: Path, namespaces: Iterable[str]) -> list[Found]:
    """Live (non-zombie) processes run from ``venv`` (``ray start``, gcs_server, raylet,
    dashboard, the engine) or living in one of ``namespaces`` (also the workers, which
    rename themselves ``ray::NAME``)."""
    netns = {}
    for name in namespaces:
        try:
            netns[Path("/run/netns", name).stat().st_ino] = name
        except OSError:
            continue
    marker = str(venv)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            raw = Path(entry.path, "cmdline").read_bytes()
            inode = Path(entry.path, "ns", "net").stat().st_ino
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        why = ""
        if marker in cmdline:
            why = "runs from the Ray venv"
        if inode in netns:
            why = f"in namespace {netns[inode]}"
        stat = _stat(pid)
        if why and stat is not None and stat[0] not in ("Z", "X"):
            found.append(Found(pid, stat[1], stat[2], cmdline[:160], why))
    return found
