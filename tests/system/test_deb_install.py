"""The Debian package on a real systemd: install, run, reload (and a rejected one), restarts
that keep the lanes (SIGKILL, systemctl restart, upgrade, watchdog), an upgrade to a newer
version with changed defaults without a prompt, stop, a broken config at start (no
restarts), purge.

Runs packaging/system-test (systemd booted in systemd-nspawn on a cached debootstrap
rootfs) against the newest dist/qwend_*.deb. Marked ``system``: `make system` builds
the package first and runs it; it needs root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_TEST = REPO / "packaging" / "system-test"

pytestmark = [pytest.mark.system, pytest.mark.timeout(1200)]


def newest_deb() -> Path:
    """The package under test: the newest dist/qwend_*.deb."""
    debs = sorted((REPO / "dist").glob("qwend_*.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        pytest.fail("no dist/qwend_*.deb: run `make deb` (or `make system`) first")
    return debs[-1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: debootstrap, systemd-nspawn, nsenter")
def test_package_installs_runs_and_purges_on_real_systemd() -> None:
    """Every check of packaging/system-test passes on a freshly booted container."""
    deb = newest_deb()
    proc = subprocess.Popen(
        [str(SYSTEM_TEST), "--deb", str(deb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=1100)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the script tear its container down; SIGKILL would orphan it.
        proc.terminate()
        _, stderr = proc.communicate(timeout=90)
        pytest.fail(f"packaging/system-test timed out\n{stderr[-6000:]}")
    sys.stderr.write(stderr)
    assert proc.returncode == 0, stderr[-6000:]
    assert "all checks passed" in stderr
