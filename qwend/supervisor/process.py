"""One lane process: spawn in its own process group, capture output, stop, reap.

Orphans are the worst outcome (a dead qwend whose lanes still hold NPU memory),
so two mechanisms make sure lanes die with qwend, even after ``kill -9``:

* the lane's direct child gets ``PR_SET_PDEATHSIG=SIGKILL`` (set in the child
  between fork and exec), so it dies when qwend's spawning thread dies;
* PDEATHSIG never reaches grandchildren (vLLM workers, the sim's helpers), so an
  ``OrphanGuard`` process, started once per daemon, holds the read end of a
  pipe from qwend and the list of lane process groups. When qwend dies, for any
  reason, the pipe reaches EOF and the guard SIGKILLs every registered group.

A lane is started as the leader of a session of its own, and "its processes" are its
process group plus its session (``lane_members``): a child may move to a process group of
its own (Ray's raylet does it for every worker, the actors that hold the devices) but only
``setsid`` leaves the session. Stops, reaps and the guard reach both.

Output goes to ``log_dir/NAME.log`` (the previous starts kept as ``NAME.log.1``
.. ``.N``) and to an in-memory ring of the last lines for ``log_tail``/``follow``.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import cast

from qwend.config.model import LaneConfig, StopMode
from qwend.errors import LaneError
from qwend.logs import lane_logger
from qwend.supervisor.environment import merged_lane_env
from qwend.supervisor.guard import OrphanGuard
from qwend.supervisor.output import DEFAULT_LOG_MAX_BYTES, CappedLog, LogRing, rotate_logs

PR_SET_PDEATHSIG = 1
CHUNK = 65536
DAEMON_ONLY_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)
"""systemd hands these to qwend alone; a lane must not notify or adopt sockets as qwend."""

_libc: ctypes.CDLL | None
try:
    # Loaded in the parent: the child, between fork and exec, only calls into it.
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not glibc/musl
    _libc = None


def _pdeathsig_preexec(parent: int) -> Callable[[], None]:
    """A preexec_fn that makes the child die with SIGKILL when qwend dies."""

    def preexec() -> None:
        if _libc is not None and sys.platform.startswith("linux"):
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # qwend may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def lane_environment(
    lane: LaneConfig,
    *,
    inherited: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    chip_family: str | None = None,
) -> dict[str, str]:
    """inherited + daemon extras + Ascend defaults + lane env + ASCEND_RT_VISIBLE_DEVICES.

    The Ascend defaults depend on the chip family (None: not known yet, e.g.
    before npu-smi answered): see ``qwend.supervisor.environment``.
    """
    source = os.environ if inherited is None else inherited
    base = {k: v for k, v in source.items() if k not in DAEMON_ONLY_ENV} | dict(extra or {})
    env = merged_lane_env(base, lane.npus, chip_family, lane.env)
    env["ASCEND_RT_VISIBLE_DEVICES"] = lane.visible_devices
    return env


def describe_returncode(code: int) -> str:
    """``exit 1`` or ``signal SIGKILL`` for an asyncio/subprocess return code."""
    if code >= 0:
        return f"exit {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


STOPPED = "stopped"
"""``last_exit`` of a lane that ended because qwend stopped it, the way it was asked to."""


def describe_requested_stop(description: str, sig: int) -> str:
    """``last_exit`` once qwend stopped a running lane: ``stopped`` when it ended the way
    a stop ends a process (the stop signal, exit 0 or the shell's 128+N), else what
    happened in brackets (``stopped (signal SIGKILL)`` after the stop timeout)."""
    name = signal.Signals(sig).name
    if description in ("exit 0", f"signal {name}", f"exit {128 + sig}"):
        return STOPPED
    return f"{STOPPED} ({description})"


def _processes() -> Iterator[tuple[int, int, int]]:
    """``(pid, pgid, sid)`` of every live (non-zombie) process, from /proc."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        ids = _ids(entry.path)
        if ids is not None:
            yield int(entry.name), *ids


def _ids(proc_dir: str) -> tuple[int, int] | None:
    """``(pgid, sid)`` of a live process from its /proc directory; None when it is gone
    or a zombie."""
    try:
        stat = Path(proc_dir, "stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command: state ppid pgrp session ...
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 4 or fields[0] in ("Z", "X"):
        return None
    return int(fields[2]), int(fields[3])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, from /proc."""
    return [pid for pid, group, _ in _processes() if group == pgid]


def lane_members(leader: int) -> list[int]:
    """Live processes of the lane whose main process ``leader`` was started as a session
    leader (``start_new_session``): its process group and its session.

    A process that moves to a process group of its own leaves the group but stays in the
    session: Ray's raylet puts every worker (the actors that hold the devices) in a group
    of its own, so a ``killpg`` of ``ray start``'s group misses them. Only ``setsid``
    leaves the session (a daemon on purpose; nothing short of a cgroup follows it).
    """
    return [pid for pid, group, session in _processes() if leader in (group, session)]


def kill_group(pgid: int, sig: int) -> bool:
    """Signal a whole process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_lane(leader: int, sig: int) -> bool:
    """Signal the lane's process group, then each process of its session outside that
    group (see ``lane_members``; each one once: a second SIGTERM means "now" to many
    servers); False when none is left."""
    alive = kill_group(leader, sig)
    for pid, group, session in _processes():
        if session == leader and group != leader:
            alive = _signal_session_member(pid, leader, sig) or alive
    return alive


def _signal_session_member(pid: int, sid: int, sig: int) -> bool:
    """Signal ``pid`` if it is still in session ``sid``: through a pidfd opened before the
    check, so a PID reused since the scan is never signalled."""
    if not hasattr(os, "pidfd_open"):  # pragma: no cover - not Linux
        return _kill(pid, sig)
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # ENOSYS (Linux < 5.3) or no fd left: the scan's word must do
        return _kill(pid, sig)
    try:
        ids = _ids(f"/proc/{pid}")
        if ids is None or ids[1] != sid:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    finally:
        os.close(fd)


def signal_stop(leader: int, sig: int, mode: StopMode) -> bool:
    """The first step of a lane's stop: ``sig`` to every process of the lane, or to its
    main process only (``StopMode.MAIN``: it stops its children in its own order)."""
    if mode is StopMode.MAIN:
        return _kill(leader, sig)
    return kill_lane(leader, sig)


def _kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol plus a callback the moment the main process exits."""

    def __init__(
        self, on_exit: Callable[[int, int], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(limit=CHUNK, loop=loop)
        self._on_exit = on_exit
        self._lane_transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._lane_transport = cast(asyncio.SubprocessTransport, transport)

    def process_exited(self) -> None:
        super().process_exited()
        transport = self._lane_transport
        code = transport.get_returncode() if transport is not None else None
        if transport is not None and code is not None:
            self._on_exit(transport.get_pid(), code)


class LaneProcess:
    """One run of a lane: spawn, output capture, wait, stop. Not restartable."""

    def __init__(
        self,
        lane: LaneConfig,
        *,
        log_dir: Path,
        log_keep: int,
        env: Mapping[str, str],
        guard: OrphanGuard | None = None,
        ring: LogRing | None = None,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    ) -> None:
        self.lane = lane
        self.log_path = log_dir / f"{lane.name}.log"
        self._log_keep = log_keep
        self._log_max = log_max_bytes
        self._env = dict(env)
        self._guard = guard
        self.ring = ring if ring is not None else LogRing()
        self._proc: asyncio.subprocess.Process | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._exited = asyncio.Event()
        self.pid: int | None = None
        self.started_at: float | None = None
        """Epoch seconds of the spawn."""
        self.returncode: int | None = None
        self._log = lane_logger(lane.name, component="process")

    @property
    def running(self) -> bool:
        """Spawned and not yet exited."""
        return self._proc is not None and not self._exited.is_set()

    @property
    def exited(self) -> asyncio.Event:
        """Set the moment the main process has exited (and was reaped)."""
        return self._exited

    @property
    def exit_description(self) -> str | None:
        """``exit N`` / ``signal NAME`` once exited."""
        return None if self.returncode is None else describe_returncode(self.returncode)

    async def start(self) -> int:
        """Spawn the lane; returns its PID. Raises LaneError when it cannot be executed."""
        if self._proc is not None:
            raise LaneError(f"lane {self.lane.name}: process already started")
        argv = self.lane.argv()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        rotate_logs(self.log_path, self._log_keep)
        logfile = CappedLog(self.log_path, self._log_keep, self._log_max)
        header = f"--- qwend: starting lane {self.lane.name}: {argv!r}\n"
        logfile.write(header.encode())
        self.ring.feed(header)
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(self._on_exit, loop),
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self.lane.cwd,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(os.getpid()),
            )
        except OSError as exc:
            logfile.write(f"--- qwend: cannot start: {exc}\n".encode())
            logfile.close()
            where = f" (defined in {self.lane.source})" if self.lane.source else ""
            raise LaneError(
                f"lane {self.lane.name}: cannot run {argv[0]!r}: {exc.strerror or exc}{where};"
                " check lane.command and PATH"
            ) from exc
        except BaseException:
            # Cancelled mid-spawn (a stop while starting): asyncio kills the child; the log
            # file is ours to close.
            logfile.close()
            raise
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._transport = transport
        self._proc = proc
        self.pid = proc.pid
        self.started_at = time.time()
        if self._guard is not None:
            self._guard.register(proc.pid)
        self._reader = asyncio.create_task(self._pump(proc, logfile), name=f"log:{self.lane.name}")
        self._log.info("lane process started", pid=proc.pid, argv=argv, log=str(self.log_path))
        return proc.pid

    async def _pump(self, proc: asyncio.subprocess.Process, logfile: CappedLog) -> None:
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(CHUNK):
                logfile.write(chunk)
                self.ring.feed(chunk.decode("utf-8", "replace"))
        finally:
            self.ring.flush()
            logfile.close()

    def _on_exit(self, pid: int, code: int) -> None:
        # Called by the protocol as soon as the main process is reaped; asyncio's own
        # Process.wait() also waits for the pipes, which grandchildren may hold open.
        self.returncode = code
        # The leader is gone; whatever it left in its group and session goes with it.
        kill_lane(pid, signal.SIGKILL)
        self._exited.set()
        self._log.info("lane process exited", pid=pid, status=describe_returncode(code))

    async def wait(self) -> int:
        """Wait for the lane's main process to exit; its return code."""
        if self._proc is None:
            raise LaneError(f"lane {self.lane.name}: process never started")
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def stop(self, sig: int, timeout: float) -> str | None:
        """Signal the lane (its group and session), SIGKILL it after ``timeout``; returns
        when every process of it is gone."""
        proc = self._proc
        if proc is None:
            return None
        if not self._exited.is_set():
            self._log.info(
                "stopping lane", pid=proc.pid, signal=signal.Signals(sig).name, timeout_s=timeout
            )
            signal_stop(proc.pid, sig, self.lane.stop.mode)
            try:
                await asyncio.wait_for(self._exited.wait(), timeout)
            except TimeoutError:
                self._log.warning(
                    "lane did not stop in time; killing its process group",
                    pid=proc.pid,
                    timeout_s=timeout,
                )
                kill_lane(proc.pid, signal.SIGKILL)
                await self._exited.wait()
        await self._reap_group(proc.pid)
        return self.exit_description

    async def _reap_group(self, pgid: int) -> None:
        deadline = time.monotonic() + 5.0
        while members := lane_members(pgid):
            kill_lane(pgid, signal.SIGKILL)
            if time.monotonic() > deadline:
                self._log.error("lane processes survive SIGKILL", pgid=pgid, pids=members)
                break
            await asyncio.sleep(0.02)
        if self._guard is not None:
            self._guard.unregister(pgid)
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
            except TimeoutError:
                # Someone outside the group still holds the pipe; stop reading.
                self._reader.cancel()
        if self._transport is not None:
            self._transport.close()

    async def finish(self) -> None:
        """After an unasked exit: make sure the group is gone and output is flushed."""
        if self._proc is not None and self._exited.is_set():
            await self._reap_group(self._proc.pid)
