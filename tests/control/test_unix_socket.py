"""Control socket file: permissions, group, stale and live sockets, peer credentials."""

from __future__ import annotations

import grp
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwend.control.unix_socket import create_control_socket, peer_caller, remove_control_socket
from qwend.errors import ControlError


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="qs", dir="/tmp") as tmp:
        yield Path(tmp)


def test_socket_is_0660_in_a_created_parent(sock_dir: Path) -> None:
    path = sock_dir / "run" / "qwend" / "control.sock"
    sock = create_control_socket(path)
    try:
        st = path.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    finally:
        sock.close()
        remove_control_socket(path)
    assert not path.exists()


def test_socket_group_is_applied(sock_dir: Path) -> None:
    group = grp.getgrgid(65534).gr_name  # nogroup: exists on Debian-like systems
    path = sock_dir / "control.sock"
    sock = create_control_socket(path, group)
    try:
        assert path.stat().st_gid == 65534
    finally:
        sock.close()


def test_unknown_group_is_a_clear_error(sock_dir: Path) -> None:
    with pytest.raises(ControlError, match="socket_group 'no-such-group' does not exist"):
        create_control_socket(sock_dir / "control.sock", "no-such-group")


def test_stale_socket_from_a_crashed_daemon_is_replaced(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))
    crashed.close()  # the file stays, nothing listens: like a SIGKILLed daemon
    path.chmod(0o600)
    sock = create_control_socket(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(str(path))
        probe.close()
    finally:
        sock.close()


def test_live_socket_is_refused(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    live = create_control_socket(path)
    try:
        with pytest.raises(ControlError, match="another qwend is already running on"):
            create_control_socket(path)
        assert path.exists()
    finally:
        live.close()


def test_regular_file_in_the_way_is_not_deleted(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    path.write_text("precious")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        create_control_socket(path)
    assert path.read_text() == "precious"


def test_peer_credentials_of_a_unix_connection(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    server = create_control_socket(path)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
        server.setblocking(True)
        conn, _ = server.accept()
        caller = peer_caller(conn)
        conn.close()
    finally:
        client.close()
        server.close()
    assert caller is not None
    assert (caller.uid, caller.pid) == (os.getuid(), os.getpid())
    assert caller.user == "root" or caller.user


def test_peer_credentials_of_tcp_is_none() -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert peer_caller(tcp) is None
    finally:
        tcp.close()
    assert peer_caller(None) is None
