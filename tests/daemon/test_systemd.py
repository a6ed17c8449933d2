"""sd_notify against real AF_UNIX datagram sockets (path and abstract)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwend.daemon.systemd import Notifier, notify_address, watchdog_interval


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        sock.bind(path)
        value = path
    else:
        name = f"qwend-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind(b"\0" + name.encode())
        value = "@" + name
    sock.settimeout(2.0)
    yield value, sock
    sock.close()


def recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_every_message_reaches_the_socket(notify_socket: tuple[str, socket.socket]) -> None:
    value, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": value})
    assert n.enabled
    assert n.ready("2/3 lanes ready")
    assert recv(sock) == ["READY=1", "STATUS=2/3 lanes ready"]
    assert n.status("3/3 lanes ready")
    assert recv(sock) == ["STATUS=3/3 lanes ready"]
    assert n.watchdog()
    assert recv(sock) == ["WATCHDOG=1"]
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    fields = recv(sock)
    assert fields[0] == "RELOADING=1"
    key, _, usec = fields[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.stopping()
    assert recv(sock) == ["STOPPING=1"]


def test_no_socket_means_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready()
    assert not n.watchdog()


def test_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert not n.ready()
    assert not n.stopping()


def test_addresses() -> None:
    assert notify_address("@abc") == b"\0abc"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("") is None
    assert notify_address("vsock:2:1") is None


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    other = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    assert watchdog_interval(other, pid=2) is None
    assert watchdog_interval(other, pid=1) == 0.5


async def test_watchdog_loop_pings_periodically(notify_socket: tuple[str, socket.socket]) -> None:
    value, sock = notify_socket
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    n = Notifier({"NOTIFY_SOCKET": value})
    task = asyncio.create_task(n.watchdog_loop(0.05))
    try:
        for _ in range(3):
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
            assert data == b"WATCHDOG=1"
    finally:
        task.cancel()
