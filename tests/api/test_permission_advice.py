"""What qwenctl advises on a control socket it may not open (pure)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from qwend.api.client import SocketPermissionDenied, connection_error, permission_advice


@pytest.mark.parametrize(("group", "gid"), [("root", 0), ("wheel", 10), ("sudo", 27), ("x", 0)])
def test_an_admin_group_is_never_to_be_joined(group: str, gid: int) -> None:
    advice = permission_advice(group, gid)
    assert "usermod -aG qwend" in advice and f"-aG {group} " not in advice
    assert advice.startswith("run qwenctl with sudo")
    assert '[daemon] socket_group = "qwend"' in advice and "restart qwend" in advice


def test_a_group_of_its_own_is_to_be_joined() -> None:
    advice = permission_advice("qwend", 998)
    assert advice.startswith("join its group: sudo usermod -aG qwend $USER")
    assert "sudo" in advice


def test_a_root_group_socket_gets_the_sudo_advice(tmp_path: Path) -> None:
    socket_file = tmp_path / "control.sock"
    socket_file.touch()
    error = connection_error(socket_file, PermissionError(errno.EACCES, "Permission denied"))
    assert isinstance(error, SocketPermissionDenied)
    message = str(error)
    assert message.startswith(f"permission denied on the qwend control socket {socket_file}")
    if socket_file.stat().st_gid == 0:  # root runs the tests here; others see their own group
        assert "run qwenctl with sudo" in message and "-aG root" not in message
