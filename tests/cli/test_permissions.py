"""Socket permissions seen from qwenctl run as an unprivileged user (needs root to switch)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qwend.cli.exit import ExitStatus
from tests.support.control_fakes import Served, serve_control

QWENCTL = Path(sys.executable).with_name("qwenctl")
NOBODY = 65534


def runnable_by_others(script: Path) -> bool:
    """Whether any user may run ``script``: it is readable and every folder above searchable.

    Not so in a checkout under a 0700 folder (root's home, ``mktemp -d``).
    """
    if not script.exists():
        return False
    folders_searchable = all(p.stat().st_mode & stat.S_IXOTH for p in script.parents)
    return folders_searchable and bool(script.stat().st_mode & stat.S_IROTH)


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not runnable_by_others(QWENCTL),
    reason="switching to another user needs root and setpriv, and qwenctl where it can run it",
)


async def as_nobody(srv: Served, *argv: str, gid: int = NOBODY) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={gid}",
        "--clear-groups",
        str(QWENCTL),
        "--socket",
        str(srv.path),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def root_socket() -> AsyncIterator[Served]:
    # The socket's directory is world-searchable so only the socket's own mode decides.
    async with serve_control(dir_mode=0o755) as srv:
        yield srv


async def test_socket_is_0660_root_group(root_socket: Served) -> None:
    st = root_socket.path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)


async def test_user_outside_the_group_gets_a_clean_permission_denied(root_socket: Served) -> None:
    code, out, err = await as_nobody(root_socket, "status")
    assert code == ExitStatus.PERMISSION_DENIED
    assert out == ""
    assert "permission denied on the qwend control socket" in err
    assert "group root" in err  # what is in the way...
    assert "-aG root" not in err  # ...but never "join root": that is far more than qwend
    assert "run qwenctl with sudo" in err and '[daemon] socket_group = "qwend"' in err
    assert "Traceback" not in err


async def test_member_of_the_socket_group_is_served() -> None:
    async with serve_control(group="nogroup", dir_mode=0o755) as srv:
        code, out, err = await as_nobody(srv, "lanes", "--json")
    assert (code, err) == (ExitStatus.OK, "")
    assert '"name": "stable"' in out
