"""Run a real ``qwend`` daemon subprocess on a temporary config, and tear it down.

    cfg = write_config(tmp_path, [make_lane("a"), make_lane("b", npus=(1,))])
    async with run_daemon(cfg) as d:          # returns once systemd would see READY=1
        await d.wait_lanes({"a": "ready", "b": "ready"})
        infos = await d.lanes()               # name -> qwend.api.messages.LaneInfo
        d.send(signal.SIGHUP)
        await d.wait_notify(lambda m: m == "READY=1", after=mark)

The daemon runs with ``NOTIFY_SOCKET`` pointing at a real datagram socket that
this helper reads, so every sd_notify message is in ``d.notifications``. At
exit the daemon gets SIGTERM (then SIGKILL), and any process it left behind is
killed and reported as a failure by the test that asked (``d.leftovers()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import tomli_w

from qwend.api.messages import LaneInfo
from qwend.config.model import LaneConfig

QWEND = [sys.executable, "-m", "qwend"]


def lane_table(lane: LaneConfig) -> dict[str, Any]:
    """A LaneConfig as the ``[lane]`` table of a lanes.d file."""
    table: dict[str, Any] = {
        "name": lane.name,
        "role": lane.role,
        "variant": lane.variant,
        "standby": lane.standby,
        "npus": list(lane.npus),
        "port": lane.port,
        "host": lane.host,
        "model": lane.model,
        "aliases": list(lane.aliases),
        **({"served_model": lane.served_model} if lane.served_model else {}),
        **({"max_model_len": lane.max_model_len} if lane.max_model_len else {}),
        **({"kv_role": str(lane.kv_role)} if lane.kv_role else {}),
        "command": list(lane.command),
        "env": dict(lane.env),
        "health": {
            "path": lane.health.path,
            "startup_timeout_s": lane.health.startup_timeout_s,
            "interval_s": lane.health.interval_s,
            "timeout_s": lane.health.timeout_s,
            "failure_threshold": lane.health.failure_threshold,
        },
        "stop": {"signal": lane.stop.signal.name, "timeout_s": lane.stop.timeout_s},
        "restart": {
            "backoff_min_s": lane.restart.backoff_min_s,
            "backoff_max_s": lane.restart.backoff_max_s,
            "crash_loop_limit": lane.restart.crash_loop_limit,
            "crash_loop_window_s": lane.restart.crash_loop_window_s,
        },
        "capabilities": {"text": lane.capabilities.text, "image": lane.capabilities.image},
    }
    if lane.cwd is not None:
        table["cwd"] = str(lane.cwd)
    return table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short_dir() -> Path:
    """A short directory under /tmp (AF_UNIX paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="qwd-", dir="/tmp"))


def write_config(
    base: Path,
    lanes: Sequence[LaneConfig],
    *,
    drain_timeout_s: float = 5.0,
    router_port: int | None = None,
    runtime: Path | None = None,
    monitor: Mapping[str, Any] | None = None,
) -> Path:
    """Write qwend.toml + lanes.d/*.toml under ``base``; returns qwend.toml's path."""
    run = runtime if runtime is not None else short_dir()
    base.mkdir(parents=True, exist_ok=True)
    lanes_dir = base / "lanes.d"
    lanes_dir.mkdir(exist_ok=True)
    main = {
        "daemon": {
            "control_socket": str(run / "control.sock"),
            "state_dir": str(base / "state"),
            "log_dir": str(base / "logs"),
            "lanes_dir": "lanes.d",
            "drain_timeout_s": drain_timeout_s,
            "lane_log_keep": 2,
        },
        "router": {"listen": f"127.0.0.1:{router_port or free_port()}"},
        "monitor": dict(monitor) if monitor is not None else {"enabled": False},
    }
    path = base / "qwend.toml"
    path.write_bytes(tomli_w.dumps(main).encode())
    for old in lanes_dir.glob("*.toml"):
        old.unlink()
    for lane in lanes:
        (lanes_dir / f"{lane.name}.toml").write_bytes(
            tomli_w.dumps({"lane": lane_table(lane)}).encode()
        )
    return path


def write_lane(lanes_dir: Path, name: str, table: Mapping[str, Any]) -> None:
    """Write ``lanes_dir/NAME.toml`` holding ``[lane]`` ``table`` (keys a LaneConfig lacks:
    url, group, kv_role ...)."""
    (lanes_dir / f"{name}.toml").write_bytes(tomli_w.dumps({"lane": dict(table)}).encode())


def add_public(config: Path, public: Mapping[str, Any]) -> None:
    """Give a qwend.toml written by ``write_config`` this ``[public]`` section."""
    doc = tomllib.loads(config.read_text())
    doc["public"] = dict(public)
    config.write_bytes(tomli_w.dumps(doc).encode())


@dataclass
class DaemonProc:
    """A running daemon subprocess and what it told systemd."""

    proc: asyncio.subprocess.Process
    config_path: Path
    control_socket: Path
    stderr_path: Path
    notifications: list[str] = field(default_factory=list)
    known_pids: set[int] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: int) -> None:
        """Signal the daemon."""
        os.kill(self.proc.pid, sig)

    def _note(self, message: str) -> None:
        self.notifications.append(message)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_notify(
        self, predicate: Callable[[str], bool], timeout: float = 30.0, after: int = 0
    ) -> str:
        """The first notification (from index ``after``) whose text matches."""
        deadline = time.monotonic() + timeout
        checked = after
        while True:
            for message in self.notifications[checked:]:
                if predicate(message):
                    return message
            checked = len(self.notifications)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching sd_notify message; got {self.notifications}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def client(self) -> Any:
        from qwend.api.client import ControlClient

        return ControlClient(self.control_socket, timeout_s=30)

    async def lanes(self) -> dict[str, LaneInfo]:
        """name -> LaneInfo from the control socket (records the PIDs seen)."""
        async with self.client() as client:
            response = await client.lanes()
        infos = {lane.name: lane for lane in response.lanes}
        self.known_pids.update(i.pid for i in infos.values() if i.pid is not None)
        self.descendants()
        return infos

    def descendants(self) -> set[int]:
        """Live descendants of the daemon (remembered for the leftover check)."""
        try:
            found = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            found = set()
        self.known_pids |= found
        return found

    async def wait_lanes(
        self, states: Mapping[str, str], timeout: float = 60.0
    ) -> dict[str, LaneInfo]:
        """Poll until every named lane is in the given state."""
        deadline = time.monotonic() + timeout
        while True:
            infos = await self.lanes()
            if all(n in infos and infos[n].state == s for n, s in states.items()):
                return infos
            if time.monotonic() > deadline:
                got = {n: (i.state, i.reason) for n, i in infos.items()}
                raise TimeoutError(f"lanes not in {dict(states)}: {got}")
            await asyncio.sleep(0.1)

    async def wait_state(self, lane: str, want: set[str], timeout: float) -> tuple[float, float]:
        """Poll until ``lane``'s state is in ``want``: the monotonic times of the last poll
        that saw another state (before it, surely not yet) and of the one that saw it."""
        deadline = time.monotonic() + timeout
        before = time.monotonic()
        while True:
            asked = time.monotonic()
            infos = await self.lanes()
            if infos[lane].state in want:
                return before, time.monotonic()
            before = asked
            if time.monotonic() > deadline:
                raise AssertionError(f"{lane} not {want} in {timeout:g}s: {infos[lane]}")
            await asyncio.sleep(0.05)

    async def until_lane(
        self, lane: str, check: Callable[[LaneInfo], object], what: str, timeout: float
    ) -> LaneInfo:
        """Poll until ``check`` holds for ``lane``; the lane as it then was."""
        deadline = time.monotonic() + timeout
        while True:
            info = (await self.lanes())[lane]
            if check(info):
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g}s: {info}")
            await asyncio.sleep(0.05)

    async def completed(self, lane: str) -> int:
        """Requests ``lane`` completed so far (the router's stats)."""
        stats = (await self.lanes())[lane].stats
        return int(stats.requests) if stats is not None else 0

    async def served(self, lane: str, more_than: int = 0, timeout: float = 30.0) -> int:
        """Requests ``lane`` completed, once more than ``more_than``."""
        deadline = time.monotonic() + timeout
        while True:
            done = await self.completed(lane)
            if done > more_than:
                return done
            if time.monotonic() > deadline:
                msg = f"lane {lane} served no request past {more_than} in {timeout:g}s"
                raise AssertionError(msg)
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout: float) -> int:
        """The daemon's exit status."""
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def leftovers(self) -> list[int]:
        """Processes the daemon started that are still alive."""
        alive = []
        for pid in sorted(self.known_pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _limit_nofile(n: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


async def _read_notify(sock: socket.socket, daemon: DaemonProc) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(sock, 65536)
        for line in data.decode().split("\n"):
            daemon._note(line)


@contextlib.asynccontextmanager
async def run_daemon(
    config_path: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    ready_timeout: float = 30.0,
    watchdog_usec: int | None = None,
    nofile: int | None = None,
    prefix: Sequence[str] = (),
) -> AsyncIterator[DaemonProc]:
    """Start ``python -m qwend --config PATH``; SIGTERM (then SIGKILL) it at exit.

    ``nofile``: the daemon's RLIMIT_NOFILE, soft and hard (so it cannot raise it), to run
    out of file descriptors with a few hundred connections instead of thousands.
    ``prefix``: a command that execs the daemon, e.g. ``ip netns exec NS`` (its PID stays
    the daemon's).
    """
    control = Path(tomllib.loads(config_path.read_text())["daemon"]["control_socket"])
    run = short_dir()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(run / "notify"))
    notify.setblocking(False)
    environ = {**os.environ, **(env or {}), "NOTIFY_SOCKET": str(run / "notify")}
    if watchdog_usec is not None:
        environ["WATCHDOG_USEC"] = str(watchdog_usec)
    stderr_path = config_path.parent / "qwend.stderr"
    with stderr_path.open("wb") as err, (config_path.parent / "qwend.stdout").open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *prefix,
            *QWEND,
            "--config",
            str(config_path),
            "--log-format",
            "json",
            *args,
            stdout=out,
            stderr=err,
            env=environ,
            preexec_fn=None if nofile is None else partial(_limit_nofile, nofile),
        )
    daemon = DaemonProc(proc, config_path, control, stderr_path)
    reader = asyncio.create_task(_read_notify(notify, daemon))
    try:
        if wait_ready:
            try:
                await daemon.wait_notify(lambda m: m == "READY=1", timeout=ready_timeout)
            except TimeoutError as exc:
                raise AssertionError(f"qwend not ready:\n{daemon.stderr()[-4000:]}") from exc
        yield daemon
    finally:
        daemon.descendants()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        notify.close()
        for pid in daemon.leftovers():
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        shutil.rmtree(run, ignore_errors=True)
        if control.parent.name.startswith("qwd-"):  # made by write_config
            shutil.rmtree(control.parent, ignore_errors=True)
