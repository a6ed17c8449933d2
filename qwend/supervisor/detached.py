"""Lane processes that outlive the daemon: spawn detached, record, re-adopt, watch, stop.

Used instead of ``qwend.supervisor.process.LaneProcess`` when ``[daemon]
lanes_survive_restart`` is on (see ``qwend.supervisor.adoption`` for the rules).
The differences, each so the lane survives qwend's exit:

* no PDEATHSIG and no orphan guard registration;
* the lane writes its output straight to ``log_dir/NAME.log`` (a pipe read by
  qwend would break, and the lane die of SIGPIPE, when qwend goes); qwend follows
  the file into the in-memory ring for ``log_tail``/``follow``;
* each process is recorded in ``state_dir/lanes.toml`` (``LaneRegistry``) the
  moment it is spawned and dropped when it is gone;
* a process adopted by a restarted daemon is not its child: its exit is seen
  through a pidfd (or, where there is none, by polling /proc), and its exit status
  is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from qwend.config.model import LaneConfig
from qwend.errors import LaneError
from qwend.files import atomic_write
from qwend.logs import get_logger, lane_logger
from qwend.supervisor.adoption import (
    LANES_FILE,
    AdoptionError,
    LaneRecord,
    ProcFacts,
    dumps_records,
    lane_digest,
    loads_records,
    start_ticks_of,
)
from qwend.supervisor.output import (
    DEFAULT_LOG_MAX_BYTES,
    LogRing,
    read_log_tail,
    rotate_by_copy,
    rotate_logs,
)
from qwend.supervisor.process import describe_returncode, kill_lane, lane_members, signal_stop

FOLLOW_PERIOD_S = 0.25
"""How often the lane's log file is read for new output (ring and followers)."""
POLL_PERIOD_S = 0.5
"""How often an adopted lane is checked when the kernel has no pidfd_open."""
ADOPTED_TAIL_LINES = 200
"""Lines of an adopted lane's log file put into the ring on adoption."""
UNKNOWN_EXIT = "exited (status unknown: started by a previous qwend)"


def proc_facts(pid: int) -> ProcFacts:
    """Start time and process group of ``pid`` from /proc (start None when none or zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ProcFacts(None)
    found = start_ticks_of(stat)
    return ProcFacts(None) if found is None else ProcFacts(found[0], found[1])


def epoch_of(start_ticks: int) -> float:
    """Epoch seconds of a process start time given in clock ticks since boot."""
    boot = 0.0
    with contextlib.suppress(OSError, ValueError), Path("/proc/stat").open() as stat:
        for line in stat:
            if line.startswith("btime "):
                boot = float(line.split()[1])
                break
    return boot + start_ticks / os.sysconf("SC_CLK_TCK")


class LaneRegistry:
    """``state_dir/lanes.toml``: the lane processes alive right now, written atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LANES_FILE
        self._records: dict[str, LaneRecord] = {}
        self._log = get_logger("supervisor")

    def load(self) -> tuple[LaneRecord, ...]:
        """The records a previous daemon left; a corrupt file is reported and ignored."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ()
        except (OSError, UnicodeDecodeError) as exc:
            self._log.error("cannot read lane records", path=str(self.path), error=str(exc))
            return ()
        try:
            records = loads_records(text, str(self.path))
        except AdoptionError as exc:
            self._log.error("lane records ignored", error=str(exc))
            return ()
        self._records = {r.name: r for r in records}
        return records

    def put(self, record: LaneRecord) -> None:
        """Record a lane process (replacing the lane's previous one)."""
        self._records[record.name] = record
        self._save()

    def drop(self, name: str, pid: int) -> None:
        """Forget the lane's process ``pid`` (a newer process of the lane stays)."""
        record = self._records.get(name)
        if record is not None and record.pid == pid:
            del self._records[name]
            self._save()

    def _save(self) -> None:
        data = dumps_records(self._records.values()).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            atomic_write(self.path, data)
        except OSError as exc:
            # The lanes still run; only a restart would not find them (and stop nothing).
            self._log.error("cannot write lane records", path=str(self.path), error=str(exc))


async def stop_group(pid: int, sig: int, timeout: float) -> None:
    """Signal the lane led by ``pid`` (its group and session), SIGKILL it after ``timeout``;
    return when every process of it is gone."""
    kill_lane(pid, sig)
    deadline = time.monotonic() + timeout
    killed = False
    while members := lane_members(pid):
        if time.monotonic() > deadline:
            if killed:
                get_logger("supervisor").error(
                    "lane processes survive SIGKILL", pgid=pid, pids=members
                )
                return
            kill_lane(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + 5.0
        await asyncio.sleep(0.05)


async def _readable(fd: int) -> None:
    """Wait until ``fd`` is readable (a pidfd: its process exited)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


class DetachedLaneProcess:
    """One run of a lane that may outlive qwend (see the module docstring). Not restartable."""

    def __init__(
        self,
        lane: LaneConfig,
        *,
        log_dir: Path,
        log_keep: int,
        env: Mapping[str, str],
        registry: LaneRegistry,
        ring: LogRing | None = None,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    ) -> None:
        self.lane = lane
        self.log_path = log_dir / f"{lane.name}.log"
        self._log_keep = log_keep
        self._log_max = log_max_bytes
        self._env = dict(env)
        self._registry = registry
        self.ring = ring if ring is not None else LogRing()
        self._exited = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._adopted = False
        self.pid: int | None = None
        self.started_at: float | None = None
        """Epoch seconds of the spawn."""
        self.returncode: int | None = None
        self._log = lane_logger(lane.name, component="process")

    @classmethod
    def adopt(
        cls,
        lane: LaneConfig,
        record: LaneRecord,
        *,
        log_dir: Path,
        registry: LaneRegistry,
        ring: LogRing | None = None,
        log_keep: int = 0,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    ) -> DetachedLaneProcess:
        """Supervise ``record``'s process, started by a previous daemon (already verified)."""
        proc = cls(
            lane,
            log_dir=log_dir,
            log_keep=log_keep,
            env={},
            registry=registry,
            ring=ring,
            log_max_bytes=log_max_bytes,
        )
        proc._adopted = True
        proc.pid = record.pid
        proc.started_at = epoch_of(record.start_ticks)
        for line in read_log_tail(proc.log_path, ADOPTED_TAIL_LINES):
            proc.ring.feed(line + "\n")
        offset = proc.log_path.stat().st_size if proc.log_path.exists() else 0
        registry.put(record)
        proc._watch(record.pid, offset, child=None, start_ticks=record.start_ticks)
        proc._log.info("lane process adopted", pid=record.pid, log=str(proc.log_path))
        return proc

    @property
    def running(self) -> bool:
        """Spawned (or adopted) and not yet exited."""
        return self.pid is not None and not self._exited.is_set()

    @property
    def exited(self) -> asyncio.Event:
        """Set the moment the main process has exited."""
        return self._exited

    @property
    def exit_description(self) -> str | None:
        """``exit N`` / ``signal NAME`` once exited (unknown for an adopted process)."""
        if not self._exited.is_set():
            return None
        if self.returncode is None:
            return UNKNOWN_EXIT
        return describe_returncode(self.returncode)

    async def start(self) -> int:
        """Spawn the lane detached; returns its PID. LaneError when it cannot be executed."""
        if self.pid is not None:
            raise LaneError(f"lane {self.lane.name}: process already started")
        argv = self.lane.argv()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        rotate_logs(self.log_path, self._log_keep)
        with self.log_path.open("ab", buffering=0) as logfile:
            header = f"--- qwend: starting lane {self.lane.name}: {argv!r}\n"
            logfile.write(header.encode())
            self.ring.feed(header)
            try:
                child = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    cwd=self.lane.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                logfile.write(f"--- qwend: cannot start: {exc}\n".encode())
                where = f" (defined in {self.lane.source})" if self.lane.source else ""
                raise LaneError(
                    f"lane {self.lane.name}: cannot run {argv[0]!r}: {exc.strerror or exc}{where};"
                    " check lane.command and PATH"
                ) from exc
            offset = logfile.tell()
        self.pid = child.pid
        self.started_at = time.time()
        facts = proc_facts(child.pid)
        if facts.start_ticks is not None:
            record = LaneRecord(
                self.lane.name, child.pid, facts.start_ticks, self.lane.port, lane_digest(self.lane)
            )
            self._registry.put(record)
        self._watch(child.pid, offset, child=child, start_ticks=None)
        self._log.info(
            "lane process started (survives qwend restarts)",
            pid=child.pid,
            argv=argv,
            log=str(self.log_path),
        )
        return child.pid

    def _watch(
        self,
        pid: int,
        offset: int,
        *,
        child: asyncio.subprocess.Process | None,
        start_ticks: int | None,
    ) -> None:
        name = self.lane.name
        waiter = (
            self._wait_child(child) if child is not None else self._wait_foreign(pid, start_ticks)
        )
        self._tasks = [
            asyncio.create_task(waiter, name=f"exit:{name}"),
            asyncio.create_task(self._follow(offset), name=f"log:{name}"),
        ]

    async def _wait_child(self, child: asyncio.subprocess.Process) -> None:
        self._on_exit(child.pid, await child.wait())

    async def _wait_foreign(self, pid: int, start_ticks: int | None) -> None:
        # Not our child: waitpid cannot see it. A pidfd becomes readable when it exits.
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already (ESRCH), or a kernel without pidfds: poll /proc
            fd = -1
        if fd < 0:
            while True:
                if proc_facts(pid).start_ticks != start_ticks:
                    break
                await asyncio.sleep(POLL_PERIOD_S)
        else:
            try:
                # Checked after pidfd_open: the fd names the very process verified earlier.
                if proc_facts(pid).start_ticks == start_ticks:
                    await _readable(fd)
            finally:
                os.close(fd)
        self._on_exit(pid, None)

    def _on_exit(self, pid: int, code: int | None) -> None:
        self.returncode = code
        # The leader is gone; whatever it left in its group goes with it.
        kill_lane(pid, signal.SIGKILL)
        self._registry.drop(self.lane.name, pid)
        self._exited.set()
        status = UNKNOWN_EXIT if code is None else describe_returncode(code)
        self._log.info("lane process exited", pid=pid, status=status)

    async def _follow(self, offset: int) -> None:
        # The lane writes its log file itself; the ring follows the file.
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                while True:
                    done = self._exited.is_set()
                    while chunk := log.read(65536):
                        self.ring.feed(chunk.decode("utf-8", "replace"))
                    if done:
                        break
                    if log.tell() > self._log_max:
                        # The lane holds the file open: copy and truncate, read on from 0.
                        rotate_by_copy(self.log_path, self._log_keep)
                        log.seek(0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._exited.wait(), FOLLOW_PERIOD_S)
        except OSError as exc:
            self._log.warning("cannot follow lane log", log=str(self.log_path), error=str(exc))
        finally:
            self.ring.flush()

    async def wait(self) -> int | None:
        """Wait for the lane's main process to exit; its return code (None: unknown)."""
        if self.pid is None:
            raise LaneError(f"lane {self.lane.name}: process never started")
        await self._exited.wait()
        return self.returncode

    async def stop(self, sig: int, timeout: float) -> str | None:
        """Signal the group, SIGKILL it after ``timeout``; returns when the group is gone."""
        pid = self.pid
        if pid is None:
            return None
        if not self._exited.is_set():
            self._log.info(
                "stopping lane", pid=pid, signal=signal.Signals(sig).name, timeout_s=timeout
            )
            signal_stop(pid, sig, self.lane.stop.mode)
            try:
                await asyncio.wait_for(self._exited.wait(), timeout)
            except TimeoutError:
                self._log.warning(
                    "lane did not stop in time; killing its process group",
                    pid=pid,
                    timeout_s=timeout,
                )
                kill_lane(pid, signal.SIGKILL)
                await self._exited.wait()
        await self.finish()
        return self.exit_description

    async def detach(self) -> None:
        """Stop watching and following; the process goes on, recorded for the next qwend."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.running:
            self._log.info("lane left running for the next qwend", pid=self.pid)

    async def finish(self) -> None:
        """After the exit: make sure the group is gone and the output was followed."""
        pid = self.pid
        if pid is None or not self._exited.is_set():
            return
        deadline = time.monotonic() + 5.0
        while members := lane_members(pid):
            kill_lane(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                self._log.error("lane processes survive SIGKILL", pgid=pid, pids=members)
                break
            await asyncio.sleep(0.02)
        await asyncio.gather(*self._tasks, return_exceptions=True)
