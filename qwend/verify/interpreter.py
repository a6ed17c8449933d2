"""Ask a running lane's own Python interpreter for its backend packages' versions.

qwenctl runs on the daemon's host (it talks to its Unix socket), so the lane's process
is visible here: its command line names the interpreter (see qwend.verify.packages).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import psutil

from qwend.verify.packages import BACKEND_PACKAGES, PROBE, interpreter, parse_probe

PROBE_TIMEOUT_S = 30.0
"""importlib.metadata reads dist-info files only; this bounds a stuck or foreign binary."""


def _cmdlines(pid: int) -> list[list[str]]:
    """The command lines of the lane's process and of its descendants, parent first."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(proc.cmdline())
    return lines


async def lane_packages(pid: int | None, names: Sequence[str] = BACKEND_PACKAGES) -> dict[str, str]:
    """{package: version} (and ``python``, ``interpreter``) as the lane's interpreter sees
    them; empty when the lane runs no Python we can find or run."""
    if pid is None:
        return {}
    python = interpreter(await asyncio.to_thread(_cmdlines, pid))
    if python is None:
        return {}
    try:
        # -E: the probe must not depend on this shell's PYTHONPATH or PYTHONHOME.
        proc = await asyncio.create_subprocess_exec(
            python,
            "-E",
            "-c",
            PROBE,
            json.dumps(list(names)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return {}
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {}
    if proc.returncode != 0:
        return {}
    found = parse_probe(out.decode(errors="replace"))
    return {**found, "interpreter": python} if found else {}
