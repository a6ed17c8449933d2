"""sd_notify, spoken directly: one datagram per message to ``$NOTIFY_SOCKET``.

Supports path sockets and abstract ones (``@name``). Without ``NOTIFY_SOCKET``
(not run by systemd, or ``Type=simple``) every call is a no-op. The watchdog
ping runs on the event loop on purpose: a wedged loop stops the pings and
systemd restarts qwend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from qwend.logs import get_logger


def notify_address(value: str) -> str | bytes | None:
    """The socket address of a ``NOTIFY_SOCKET`` value (``@`` = abstract namespace)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not used by qwend


def watchdog_interval(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when off."""
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


RESTART_MARKER = "restarting"
"""File in ``$RUNTIME_DIRECTORY`` that the unit's ExecStop= helper creates when the stop
is the first half of a restart (a ``restart`` job: ``systemctl restart``, a package
upgrade), so qwend leaves its lanes running for the next qwend."""


def lanes_survive(setting: bool | None, env: Mapping[str, str], ppid: int) -> bool:
    """Whether lanes outlive this daemon: ``[daemon] lanes_survive_restart``, or for
    ``"auto"`` (None) whether qwend runs as a system service (systemd, PID 1, started it
    with an ``INVOCATION_ID``); a ``qwend`` in a terminal keeps its lanes tied to it."""
    if setting is not None:
        return setting
    return bool(env.get("INVOCATION_ID")) and ppid == 1


def _markers(env: Mapping[str, str]) -> list[Path]:
    runtime = env.get("RUNTIME_DIRECTORY", "")
    return [Path(d, RESTART_MARKER) for d in runtime.split(":") if d]


def restart_requested(env: Mapping[str, str]) -> bool:
    """systemd is restarting qwend (not stopping it): the ExecStop= helper said so."""
    return any(marker.exists() for marker in _markers(env))


def clear_restart_marker(env: Mapping[str, str]) -> None:
    """Forget a restart marker left by an earlier stop (the runtime directory may persist)."""
    for marker in _markers(env):
        with contextlib.suppress(OSError):
            marker.unlink()


class Notifier:
    """Sends sd_notify messages; a no-op when systemd did not ask for them."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self.address = notify_address(environ.get("NOTIFY_SOCKET", ""))
        self._warned = False
        self._log = get_logger("systemd")

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; False when not sent."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:  # once: a vanished socket must not flood the log
                self._log.warning("sd_notify failed", error=str(exc), fields=list(fields))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (startup or reload finished)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """STATUS=text (shown by systemctl status)."""
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        """RELOADING=1 with MONOTONIC_USEC (required by Type=notify-reload, systemd 253+)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """STOPPING=1 (shutdown begins)."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """WATCHDOG=1 (keep-alive ping)."""
        return self.notify("WATCHDOG=1")

    async def watchdog_loop(self, interval: float) -> None:
        """Ping WATCHDOG=1 every ``interval`` seconds until cancelled."""
        while True:
            self.watchdog()
            await asyncio.sleep(interval)
