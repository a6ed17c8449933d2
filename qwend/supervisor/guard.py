"""The orphan guard: a watchdog process that kills lane groups when qwend dies.

PDEATHSIG only reaches a lane's direct child; its own children (vLLM workers,
helpers) would survive a ``kill -9`` of qwend. The guard holds the read end of
a pipe whose only writer is qwend and the list of lane process groups; EOF on
the pipe (qwend exited for any reason) means SIGKILL every registered group, and every
process of the sessions those groups lead (a lane's main process is both: a process
that moved to a group of its own, as Ray's workers do, is still in the session).

The guard itself may die (an operator's ``kill``, the OOM killer); ``watch``
restarts it the moment it exits and hands the new one every registered group,
so a later ``kill -9`` of qwend still takes every lane down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from typing import IO

from qwend.logs import get_logger

_GUARD_SRC = r"""
import os, signal, sys
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
          signal.SIGUSR2, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
# A lane's leader is also its session's: processes that left its group for one of their
# own (Ray's workers) are still in the session. A few rounds: one may have been forking.
for _ in range(20):
    found = False
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and fields[0] not in "ZX" and int(fields[3]) in groups:
            found = True
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
    if not found:
        break
"""


class OrphanGuard:
    """A tiny watchdog process that SIGKILLs every lane group when qwend dies.

    It reads ``+PGID``/``-PGID`` lines from a pipe whose only writer is qwend;
    EOF (qwend exited, crashed or was SIGKILLed) means: kill what is registered.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._groups: set[int] = set()
        self._log = get_logger("guard")

    @property
    def pid(self) -> int | None:
        """PID of the guard process while it runs."""
        return self._proc.pid if self._proc is not None else None

    def _ensure(self) -> IO[str] | None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            if proc is not None:
                self._log.warning("orphan guard died; restarting it", status=proc.returncode)
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _GUARD_SRC],
                stdin=subprocess.PIPE,
                text=True,
                start_new_session=True,  # no terminal signals (Ctrl-C must not kill it first)
                close_fds=True,
            )
            self._proc = proc
            assert proc.stdin is not None
            for pgid in self._groups:
                proc.stdin.write(f"+{pgid}\n")
            proc.stdin.flush()
        return proc.stdin

    async def watch(self) -> None:
        """Keep a guard running until cancelled: restart it (with every group) when it dies."""
        while True:
            try:
                self._ensure()  # notices a dead guard, logs it and starts a new one
            except OSError as exc:  # e.g. no fd left to spawn it: try again shortly
                self._log.error("cannot start the orphan guard; retrying", error=str(exc))
                await asyncio.sleep(WATCH_POLL_S)
                continue
            assert self._proc is not None
            await _exited(self._proc)

    def _send(self, line: str) -> None:
        stdin = self._ensure()
        if stdin is None:
            return
        try:
            stdin.write(line + "\n")
            stdin.flush()
        except BrokenPipeError:
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=1.0)
            self._ensure()  # notices the dead guard, starts a new one with every group

    def register(self, pgid: int) -> None:
        """Kill group ``pgid`` if qwend dies."""
        self._groups.add(pgid)
        self._send(f"+{pgid}")

    def unregister(self, pgid: int) -> None:
        """The group is gone (or handed over); forget it."""
        self._groups.discard(pgid)
        if self._proc is not None:
            self._send(f"-{pgid}")

    def close(self) -> None:
        """Stop the guard (it kills whatever is still registered)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - guard wedged
            proc.kill()
            proc.wait()


WATCH_POLL_S = 1.0
"""How soon the watch looks again when it cannot wait for the guard's exit."""


async def _exited(proc: subprocess.Popen[str]) -> None:
    """Return once ``proc`` has exited (not reaped: ``poll()`` does), or after WATCH_POLL_S.

    The second case is when no pidfd can be had (Linux < 5.3, or no fd left).
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        await asyncio.sleep(WATCH_POLL_S)
        return
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, exited.set)  # a pidfd becomes readable when its process exits
    try:
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
