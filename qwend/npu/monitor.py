"""The NPU monitor: runs npu-smi on a timer, never blocking the daemon, and maps NPUs to lanes.

npu-smi can hang when the driver is unhealthy, so every run has a hard timeout:
the tool is started in its own session and its whole process group is killed
when the timeout passes; the view then says it is stale and why, and keeps the
last good reading with its age. Process rows are attributed to lanes through
each lane's process tree (the lane pid and its descendants, via psutil).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from qwend.config.model import LaneConfig, MonitorConfig
from qwend.errors import NpuSmiError, PreflightError
from qwend.logs import get_logger, lane_logger
from qwend.npu.attribution import attribute, degraded, describe_holders, holders
from qwend.npu.model import LaneProcess
from qwend.npu.parse import NpuReading, NpuView, parse_info


def _log() -> Any:
    return get_logger("monitor")


def resolve_command(command: str) -> list[str] | None:
    """``monitor.npu_smi`` split with shlex, its program resolved; None when not found.

    Besides PATH, the directory of this interpreter's scripts is searched, so
    ``qwend-sim npu-smi`` resolves inside a virtualenv that was not activated.
    """
    argv = shlex.split(command)
    if not argv:
        return None
    found = shutil.which(argv[0]) or shutil.which(argv[0], path=str(Path(sys.executable).parent))
    return [found, *argv[1:]] if found else None


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return {pid, *(child.pid for child in root.children(recursive=True))}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()


MAX_OUTPUT_BYTES = 4 * 1024 * 1024
"""Most npu-smi output read. ``npu-smi info`` of a 16-NPU host with many processes is tens
of KiB; a broken driver or wrapper printing without end must cost the daemon this much
memory at most, not whatever it prints."""

READ_CHUNK = 64 * 1024


class _TooLong(Exception):
    """The tool printed more than the cap."""


async def _read_capped(stream: asyncio.StreamReader, cap: int, *, strict: bool) -> bytes:
    """Read ``stream`` to EOF, keeping at most ``cap`` bytes; ``strict``: more is _TooLong."""
    data = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        if len(data) + len(chunk) > cap:
            if strict:
                raise _TooLong
            chunk = chunk[: max(0, cap - len(data))]  # keep reading so the tool never blocks
        data += chunk
    return bytes(data)


async def _communicate(proc: asyncio.subprocess.Process, cap: int) -> tuple[bytes, bytes]:
    """stdout (_TooLong past ``cap``) and the head of stderr, read together, then the exit."""
    assert proc.stdout is not None and proc.stderr is not None
    err_task = asyncio.create_task(_read_capped(proc.stderr, cap, strict=False))
    try:
        out = await _read_capped(proc.stdout, cap, strict=True)
        err = await err_task
    finally:
        err_task.cancel()  # stdout failed: the caller kills the tool; stop reading its stderr
    await proc.wait()
    return out, err


async def run_tool(argv: list[str], timeout: float, max_output: int = MAX_OUTPUT_BYTES) -> str:
    """Run ``argv`` with a hard timeout; its stdout, or NpuSmiError saying what went wrong.

    The child gets its own session so a timeout kills its whole process group
    (npu-smi wrappers and whatever they started), not just the top process.
    Output beyond ``max_output`` bytes is an error (the tool is killed), so a
    misbehaving tool cannot grow the daemon's memory.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise NpuSmiError(f"cannot run {shlex.join(argv)}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(_communicate(proc, max_output), timeout)
    except TimeoutError:
        raise NpuSmiError(
            f"{shlex.join(argv)} did not answer within {timeout:g} s and was killed "
            "(the NPU driver may be unhealthy; check `dmesg` and run npu-smi by hand)"
        ) from None
    except _TooLong:
        raise NpuSmiError(
            f"{shlex.join(argv)} printed more than {max_output} bytes (the cap) and was "
            "killed; its output is not an npu-smi table (run it by hand to see what it prints)"
        ) from None
    finally:
        if proc.returncode is None:  # timed out, too long, or the poll was cancelled
            _kill_group(proc.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_finish(proc), 5.0)
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        detail = (err.decode("utf-8", "replace").strip() or text.strip()).splitlines()
        first = detail[-1] if detail else "no output"
        raise NpuSmiError(f"{shlex.join(argv)} exited with status {proc.returncode}: {first}")
    return text


async def _finish(proc: asyncio.subprocess.Process) -> None:
    """Read a finished or killed tool's pipes to EOF, then reap it.

    In that order: a pipe left with unread output stays paused (its reader stopped at
    the cap), never sees EOF, and ``wait()``, which also waits for the pipes to close,
    would never return.
    """
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            while await stream.read(READ_CHUNK):
                pass
    await proc.wait()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class NpuMonitor:
    """Polls ``npu-smi info`` every ``interval_s`` and keeps the view for status and pre-start."""

    def __init__(
        self,
        config: MonitorConfig,
        lane_pids: Callable[[], Mapping[str, int]],
        lane_npus: Callable[[], Mapping[str, tuple[int, ...]]],
    ) -> None:
        self._config = config
        self._lane_pids = lane_pids
        self._lane_npus = lane_npus
        self._argv = resolve_command(config.npu_smi) if config.enabled else None
        self._reading: NpuReading | None = None
        self._taken_at: float | None = None
        self._error: str | None = None
        self._processes: tuple[LaneProcess, ...] = ()
        self._trees: dict[str, set[int]] = {}
        self._run: asyncio.Task[NpuReading | None] | None = None
        """The npu-smi run going now (shared by every caller of ``poll``)."""
        self._run_started = 0.0
        self._task: asyncio.Task[None] | None = None
        self._polled = asyncio.Event()
        if not config.enabled:
            self._error = "NPU monitor disabled ([monitor] enabled = false)"
        elif self._argv is None:
            self._error = (
                f"npu-smi not found: {config.npu_smi!r} ([monitor] npu_smi); "
                "NPU status and pre-start NPU checks are off"
            )

    @property
    def available(self) -> bool:
        """True when enabled and the npu-smi program was found."""
        return self._argv is not None

    async def start(self) -> None:
        """Start polling (returns at once; does nothing when disabled or npu-smi is missing)."""
        if not self.available:
            _log().warning("npu monitor off", reason=self._error)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="npu-monitor")

    async def stop(self) -> None:
        """Stop polling; a running npu-smi is killed with its process group."""
        task, self._task = self._task, None
        for each in (task, self._run):
            if each is not None:
                each.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await each

    async def _loop(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._config.interval_s)

    async def poll(self) -> NpuReading | None:
        """A reading taken since this call; None when npu-smi failed (the view says why).

        Concurrent callers share one npu-smi run: lanes starting together (daemon
        start, reload) each wait for the same run, so a hanging npu-smi delays them
        all by one timeout at most twice, never one timeout per lane in turn. A
        run already going when the call came in may predate what the caller waits
        for (a lane's NPUs just released), so it is waited out and the next shared.
        """
        argv = self._argv
        if argv is None:
            return None
        asked = time.monotonic()
        while True:
            run = self._run
            if run is None or run.done():
                run = self._start_run(argv)
            if self._run_started >= asked:
                # shielded: a caller cancelled (a lane stopped) leaves the run to the others
                return await asyncio.shield(run)
            await asyncio.wait({run})

    def _start_run(self, argv: list[str]) -> asyncio.Task[NpuReading | None]:
        self._run_started = time.monotonic()
        run = asyncio.create_task(self._poll_once(argv), name="npu-smi")
        run.add_done_callback(self._run_done)
        self._run = run
        return run

    def _run_done(self, run: asyncio.Task[NpuReading | None]) -> None:
        if not run.cancelled() and run.exception() is not None:
            _log().error("npu-smi poll failed", error=repr(run.exception()))
        # wake whoever waits for the next poll, then arm a fresh event
        self._polled.set()
        self._polled = asyncio.Event()

    async def _poll_once(self, argv: list[str]) -> NpuReading | None:
        try:
            reading = parse_info(await run_tool([*argv, "info"], self._config.timeout_s))
        except NpuSmiError as exc:
            if self._error != str(exc):
                _log().warning("npu-smi failed; NPU view is stale", error=str(exc))
            self._error = str(exc)
            return None
        lane_npus = dict(self._lane_npus())
        trees = await asyncio.to_thread(self._collect_trees)
        if self._error is not None:
            _log().info("npu-smi answers again", npus=len(reading.npus))
        self._reading, self._taken_at, self._error = reading, time.time(), None
        self._trees = trees
        self._processes = attribute(reading, trees, lane_npus)
        return reading

    async def wait_next(self) -> NpuView:
        """Wait for the next poll to finish (successful or not) and return the view."""
        await self._polled.wait()
        return self.view()

    def _collect_trees(self) -> dict[str, set[int]]:
        return {lane: process_tree(pid) for lane, pid in self._lane_pids().items()}

    def view(self) -> NpuView:
        """The current view: last good reading, its age, staleness, lanes' processes and health."""
        now = time.time()
        age = None if self._taken_at is None else max(0.0, now - self._taken_at)
        too_old = age is not None and age > 3 * self._config.interval_s + self._config.timeout_s
        lane_npus = dict(self._lane_npus())
        reading = self._reading
        return NpuView(
            enabled=self.available,
            reading=reading,
            taken_at=self._taken_at,
            age_s=age,
            stale=self.available and (self._error is not None or too_old or reading is None),
            error=self._error,
            processes=self._processes,
            lane_npus=lane_npus,
            degraded=degraded(reading, lane_npus) if reading is not None else {},
        )

    async def pre_start(self, lane: LaneConfig) -> str | None:
        """Supervisor hook before a lane (re)starts: are its NPUs free of other processes' memory?

        Waits up to ``release_wait_s`` (re-polling) for holders to let go. Then
        raises PreflightError, or, with ``start_despite_busy_npu``, returns a
        warning for the lane's status. Returns None when the NPUs are free or
        when the monitor cannot tell (disabled, npu-smi missing or failing).
        """
        if not self.available or not lane.npus:
            return None
        log = lane_logger(lane.name, component="monitor")
        own = process_tree(pid) if (pid := self._lane_pids().get(lane.name)) else set()
        deadline = time.monotonic() + self._config.release_wait_s
        found = await self._holders(lane, own)
        if found is None:
            log.warning("cannot check NPUs before start; npu-smi failed", error=self._error)
            return None
        if found:
            log.info("waiting for NPU memory release", holders=self._describe(found))
        while found and time.monotonic() < deadline:
            pause = min(1.0, self._config.interval_s, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause)
            found = await self._holders(lane, own) or ()
        if not found:
            return None
        what = (
            f"NPUs {lane.visible_devices} still in use after "
            f"{self._config.release_wait_s:g} s: {self._describe(found)}"
        )
        if self._config.start_despite_busy_npu:
            log.warning("starting despite busy NPUs", detail=what)
            return f"started despite busy NPUs: {what}"
        log.error("not starting: NPUs busy", detail=what)
        raise PreflightError(
            f"lane {lane.name}: {what}; stop those processes, or set "
            "[monitor] start_despite_busy_npu = true to start anyway"
        )

    async def _holders(self, lane: LaneConfig, own: set[int]) -> tuple[LaneProcess, ...] | None:
        reading = await self.poll()
        if reading is None:
            return None
        return holders(reading, lane.npus, own)

    def _describe(self, found: tuple[LaneProcess, ...]) -> str:
        owners = {pid: lane for lane, pids in self._trees.items() for pid in pids}
        return describe_holders(found, owners)
