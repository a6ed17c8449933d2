"""Preflight before a lane (re)starts: its port must be free, its NPUs unclaimed."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

import psutil

from qwend.config.model import LaneConfig
from qwend.errors import PreflightError


def _where(lane: LaneConfig) -> str:
    return f" (lane file {lane.source})" if lane.source else ""


def port_bind_error(host: str, port: int) -> OSError | None:
    """Try to bind ``host:port`` the way servers do (SO_REUSEADDR); the error, if any."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like uvicorn/vLLM: TIME_WAIT leftovers of a previous run must not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_owner(port: int) -> str | None:
    """``PID 123 (python3)`` listening on ``port``, when psutil may see it."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return None
                try:
                    name = psutil.Process(conn.pid).name()
                except psutil.Error:
                    name = "?"
                return f"PID {conn.pid} ({name})"
    except Exception:  # psutil may be denied /proc/net or other users' sockets
        return None
    return None


def check_port(lane: LaneConfig) -> None:
    """Raise PreflightError when the lane's port cannot be bound."""
    err = port_bind_error(lane.host, lane.port)
    if err is None:
        return
    if err.errno == errno.EADDRINUSE:
        owner = port_owner(lane.port)
        by = f" by {owner}" if owner else " by a process qwend cannot see"
        raise PreflightError(
            f"lane {lane.name}: port {lane.port} on {lane.host} is already in use{by};"
            f" stop that process or change lane.port{_where(lane)}"
        )
    raise PreflightError(
        f"lane {lane.name}: cannot bind {lane.host}:{lane.port}: {err.strerror or err};"
        f" check lane.host and lane.port{_where(lane)}"
    )


def check_claims(lane: LaneConfig, claiming: Iterable[LaneConfig]) -> None:
    """Raise PreflightError when a running lane holds this lane's NPUs or port."""
    for other in claiming:
        if other.name == lane.name or other.is_remote:
            continue  # a remote lane's port and NPUs are its own host's
        shared = sorted(set(lane.npus) & set(other.npus))
        if shared:
            npus = ",".join(str(n) for n in shared)
            raise PreflightError(
                f"lane {lane.name}: NPU {npus} is claimed by running lane {other.name};"
                f" stop {other.name} first (qwenctl stop {other.name})"
            )
        if lane.port and other.port == lane.port:  # 0: a headless member, no port
            raise PreflightError(
                f"lane {lane.name}: port {lane.port} is claimed by running lane {other.name};"
                f" stop {other.name} first or change lane.port{_where(lane)}"
            )


def preflight(lane: LaneConfig, claiming: Iterable[LaneConfig]) -> None:
    """Every check, claims first (they name the lane to stop)."""
    check_claims(lane, claiming)
    if lane.port:  # a headless group member (port 0) serves no API
        check_port(lane)
