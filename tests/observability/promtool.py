"""Run Debian's ``promtool`` (package ``prometheus``) from tests.

Locally the tests that need it skip, saying why, when it is absent; CI installs the
package and sets ``QWEND_REQUIRE_PROMTOOL=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

import pytest


def promtool() -> str:
    """The promtool executable, or a skip (a failure when CI requires it)."""
    found = shutil.which("promtool")
    if found is not None:
        return found
    reason = "promtool not found: apt-get install -y prometheus"
    if os.environ.get("QWEND_REQUIRE_PROMTOOL") == "1":
        pytest.fail(f"{reason} (QWEND_REQUIRE_PROMTOOL=1: CI must run this test)")
    pytest.skip(reason)


def run_promtool(args: Sequence[str], stdin: bytes | None = None) -> tuple[int, str]:
    """``promtool ARGS`` -> (exit status, stdout and stderr)."""
    done = subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, timeout=60, check=False
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")
