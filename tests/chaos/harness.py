"""Chaos harness: a real qwend on sim lanes, a steady mixed load, one fault, the figures.

    async with chaos_daemon(tmp_path, Topology()) as rig:
        async with rig.load() as load:
            await load.requests_at_least(50)
            async with load.window("kill -9 of a lane") as tally:
                os.kill(lanes["a"].pid, signal.SIGKILL)
                await load.requests_at_least(tally.requests + 50)
        row = await rig.finish(tally)         # recovery, orphans, fds, RSS

The load is a few concurrent clients, each sending one request after the other through
the router's port and a public port (target ``router``) in turn: text and image (a PNG
data URL), streaming and not. Every request is classified as ok, failed before the first
byte (no 200 status line, or an error body instead of a first token) or failed mid-stream
(a 200 whose body broke off, ended without ``[DONE]`` or carried an error event).

The rig is shared by the chaos tests and ``benchmarks/reliability.py``; everything is
loopback and bounded by the callers (a duration or a request count).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import tomli_w

from qwend.api.messages import LaneInfo
from qwend.config import model as config_model
from qwend.config.model import (
    Capabilities,
    HealthConfig,
    LaneConfig,
    RestartConfig,
    RouterConfig,
    StopConfig,
)
from qwend.errors import ControlError
from tests.support.daemonproc import (
    DaemonProc,
    add_public,
    free_port,
    run_daemon,
    short_dir,
    write_config,
)
from tests.support.polling import until
from tests.support.simlane import data_url, png_bytes, sim_command, sim_executable

MODEL = "Qwen3.5-9B"
TIME_SCALE = 50.0
"""Sim delays are divided by this: a 4-token answer takes a few milliseconds."""

IMAGE_URL = data_url(png_bytes(56, 56))
"""A small PNG (4 image tokens on the sim)."""

FD_TOLERANCE = 16
"""Descriptors the daemon may hold beyond its baseline after a fault (pooled lane
connections, a monitor pipe in flight): a leak of one per request or per connection
is far beyond it."""

RSS_TOLERANCE_BYTES = 24 * 1024 * 1024
"""RSS growth allowed after a fault: allocator arenas and caches settle within it; a leak
per request (10,000 requests) or a retained connection buffer would not."""


@dataclass(frozen=True)
class LaneSpec:
    """One sim lane of the rig: its role, whether it takes images, and sim fault flags."""

    name: str
    role: str
    image: bool = False
    standby: bool = False
    startup_delay_s: float = 0.0
    sim_flags: tuple[str, ...] = ()


DEFAULT_LANES = (
    LaneSpec("a", "alpha", image=True),
    LaneSpec("b", "beta", image=True),
    LaneSpec("c", "gamma"),
)
"""Three text lanes in three roles, two of them taking images: any one may fail while
another eligible lane is ready for every kind of request."""


def lane_config(spec: LaneSpec, npu: int, port: int) -> LaneConfig:
    """A sim lane with fast probes and quick restarts (the chaos time scale)."""
    command = sim_command(
        port,
        model=MODEL,
        variant="v3",
        lane_name=spec.name,
        startup_delay=spec.startup_delay_s * TIME_SCALE,  # the sim divides it
        time_scale=TIME_SCALE,
        extra=spec.sim_flags,
    )
    command[command.index(str(port))] = "{port}"
    return LaneConfig(
        name=spec.name,
        role=spec.role,
        variant=spec.name,
        npus=(npu,),
        port=port,
        model=MODEL,
        command=tuple(command),
        standby=spec.standby,
        health=HealthConfig(startup_timeout_s=60, interval_s=0.5, timeout_s=1, failure_threshold=2),
        stop=StopConfig(timeout_s=3),
        restart=RestartConfig(
            backoff_min_s=0.2, backoff_max_s=1, crash_loop_limit=100, crash_loop_window_s=60
        ),
        capabilities=Capabilities(text=True, image=spec.image),
    )


ROUTER_SETTINGS: Mapping[str, Any] = {
    "text_policy": "least_outstanding",
    "first_byte_timeout_s": 20,
    "request_timeout_s": 60,
    "breaker_cooldown_s": 1,
    # Keys of the degraded-lane handling; set when this qwend has them.
    "stream_idle_timeout_s": 2,
    "stall_timeout_s": 2,
    "probe_timeout_s": 2,
}

CONNECTION_SETTINGS: Mapping[str, Any] = {"header_timeout_s": 2, "idle_timeout_s": 5}
"""``[connections]`` of the rig, when this qwend has the section."""


def known_router_keys() -> set[str]:
    return {f.name for f in fields(RouterConfig)}


def has_connections_section() -> bool:
    """Whether this qwend's config has ``[connections]`` (header and idle timeouts)."""
    return hasattr(config_model, "ConnectionsConfig")


@dataclass
class Topology:
    """What the rig runs: lanes, extra ``[router]`` keys, ``[monitor]``."""

    lanes: Sequence[LaneSpec] = DEFAULT_LANES
    router: Mapping[str, Any] = field(default_factory=dict)
    monitor_hang_file: bool = False
    """Run the monitor with the fake npu-smi (``npu-smi-hang`` in its state dir hangs it)."""


def write_rig_config(base: Path, topology: Topology) -> tuple[Path, int, int]:
    """qwend.toml + lanes.d for ``topology``; returns (config, router port, public port)."""
    lanes = [
        lane_config(spec, npu, free_port()) for npu, spec in enumerate(topology.lanes, start=1)
    ]
    router_port, public_port = free_port(), free_port()
    monitor: dict[str, Any] = {"enabled": False}
    if topology.monitor_hang_file:
        monitor = {
            "enabled": True,
            "npu_smi": f"{sim_executable()} npu-smi",
            "interval_s": 0.5,
            "timeout_s": 2,
            "release_wait_s": 1,
        }
    cfg = write_config(base, lanes, router_port=router_port, monitor=monitor)
    add_public(cfg, {"endpoints": [{"listen": f"127.0.0.1:{public_port}", "target": "router"}]})
    doc = tomllib.loads(cfg.read_text())
    known = known_router_keys()
    wanted = {**ROUTER_SETTINGS, **topology.router}
    doc["router"].update({k: v for k, v in wanted.items() if k in known})
    if has_connections_section():
        doc["connections"] = dict(CONNECTION_SETTINGS)
    cfg.write_bytes(tomli_w.dumps(doc).encode())
    return cfg, router_port, public_port


# ---------------------------------------------------------------- load


@dataclass
class Tally:
    """What the clients saw during one window (a fault and its recovery)."""

    name: str
    requests: int = 0
    ok: int = 0
    failed_before_first_byte: int = 0
    failed_mid_stream: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    """The first few failures, for the assertion message."""
    longest_s: float = 0.0
    """Longest request (from send to its last byte)."""
    longest_stream_s: float = 0.0
    """Longest streamed request (a non-streamed answer may legitimately take long)."""
    in_flight: int = 0
    """Requests of this window not finished yet."""

    def note_failure(self, mid_stream: bool, what: str) -> None:
        if mid_stream:
            self.failed_mid_stream += 1
        else:
            self.failed_before_first_byte += 1
        if len(self.samples) < 8:
            self.samples.append(what)


REQUEST_KINDS = (
    ("text", False),
    ("text", True),
    ("image", False),
    ("image", True),
)


def request_body(kind: str, stream: bool, n: int) -> dict[str, Any]:
    content: Any = f"chaos request {n}: say something"
    if kind == "image":
        content = [
            {"type": "text", "text": "what colour is it?"},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        ]
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 6,
        "stream": stream,
    }
    if kind == "image":
        body["ignore_eos"] = True  # the sim answers images in 2 tokens otherwise
    return body


@dataclass
class Load:
    """Concurrent clients sending requests until stopped; counts into the current tally."""

    urls: Sequence[str]
    clients: int = 4
    kinds: Sequence[tuple[str, bool]] = REQUEST_KINDS
    """(text or image, streamed) of the requests, taken in turn."""
    rate: float | None = None
    """Requests per second over all clients (None: each client sends as soon as it can)."""
    client_timeout_s: float = 90.0
    total: int = 0
    tally: Tally = field(default_factory=lambda: Tally("warm-up"))
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run_client(self, index: int) -> None:
        timeout = aiohttp.ClientTimeout(total=self.client_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            k = 0
            interval = self.clients / self.rate if self.rate else 0.0
            next_at = time.monotonic()
            while not self.stopping.is_set():
                if interval:  # an open-loop pace: the next request's slot
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                # Every client goes through every kind and both ports in turn.
                kind, stream = self.kinds[(index + k) % len(self.kinds)]
                url = self.urls[(index + k // len(self.kinds)) % len(self.urls)]
                await self.one(session, url, request_body(kind, stream, index + k * self.clients))
                k += 1

    async def one(self, session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
        tally = self.tally  # the window the request started in
        started = time.monotonic()
        what = f"{'stream' if body['stream'] else 'whole'} to {url}"
        mid = False
        tally.in_flight += 1
        try:
            async with session.post(url, json=body) as resp:
                tally.statuses[resp.status] += 1
                if resp.status != 200:
                    text = (await resp.read())[:200].decode(errors="replace")
                    tally.note_failure(False, f"{what}: {resp.status} {text}")
                elif body["stream"]:
                    mid = True
                    problem = await _read_stream(resp)
                    if problem is not None:
                        tally.note_failure(problem[0], f"{what}: {problem[1]}")
                    else:
                        tally.ok += 1
                else:
                    mid = True
                    data = await resp.json(content_type=None)
                    if not data.get("choices"):
                        tally.note_failure(True, f"{what}: 200 without choices {data}")
                    else:
                        tally.ok += 1
        except aiohttp.ClientConnectorError as exc:
            tally.note_failure(False, f"{what}: {type(exc).__name__}: {exc}")
            # Nothing listens (qwend killed): pace this client instead of spinning.
            await asyncio.sleep(0.05)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            tally.note_failure(mid, f"{what}: {type(exc).__name__}: {exc}")
        tally.in_flight -= 1
        tally.requests += 1
        took = time.monotonic() - started
        tally.longest_s = max(tally.longest_s, took)
        if body["stream"]:
            tally.longest_stream_s = max(tally.longest_stream_s, took)
        self.total += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def requests_at_least(self, count: int, timeout: float = 120.0) -> None:
        """Wait until the current tally has counted ``count`` requests."""
        deadline = time.monotonic() + timeout
        while self.tally.requests < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"load stalled: {self.tally.requests}/{count} requests in {timeout}s "
                    f"({self.tally})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def total_at_least(self, count: int, timeout: float = 300.0) -> None:
        """Wait until ``count`` requests were sent since the load started."""
        deadline = time.monotonic() + timeout
        while self.total < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"load stalled at {self.total}/{count} requests")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def begin(self, name: str) -> Tally:
        """Count from now into a new tally (requests in flight count where they began)."""
        self.tally = Tally(name)
        return self.tally


async def _read_stream(resp: aiohttp.ClientResponse) -> tuple[bool, str] | None:
    """None if the stream ended with ``[DONE]``; else (after a first token?, why)."""
    tokens = 0
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event.removeprefix(b"data: ").strip()
            if data == b"[DONE]":
                return None
            try:
                payload = json.loads(data)
            except ValueError:
                return (tokens > 0, f"not an SSE JSON event: {data[:120]!r}")
            if "error" in payload:
                return (tokens > 0, f"error event after {tokens} chunks: {payload['error']}")
            tokens += 1
    return (tokens > 0, f"stream ended without [DONE] after {tokens} chunks")


# ---------------------------------------------------------------- the rig


@dataclass(frozen=True)
class Resources:
    fds: int
    rss: int


def resources(pid: int) -> Resources:
    """Open descriptors and RSS of a process."""
    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return Resources(fds, psutil.Process(pid).memory_info().rss)


@dataclass(frozen=True)
class Row:
    """One fault's line of the table."""

    fault: str
    requests: int
    ok: int
    failed_before_first_byte: int
    failed_mid_stream: int
    recovery_s: float
    orphans: int
    fds_before: int
    fds_after: int
    rss_before_mb: float
    rss_after_mb: float
    samples: tuple[str, ...] = ()
    longest_s: float = 0.0
    longest_stream_s: float = 0.0
    statuses: tuple[tuple[int, int], ...] = ()
    problems: tuple[str, ...] = ()


TABLE_HEADER = (
    "| fault | requests | failed before first byte | failed mid-stream | recovery (s) "
    "| orphans | fds before/after | RSS MB before/after |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def table_line(row: Row) -> str:
    return (
        f"| {row.fault} | {row.requests} | {row.failed_before_first_byte} "
        f"| {row.failed_mid_stream} | {row.recovery_s:.1f} | {row.orphans} "
        f"| {row.fds_before}/{row.fds_after} "
        f"| {row.rss_before_mb:.0f}/{row.rss_after_mb:.0f} |"
    )


@dataclass
class Rig:
    """A running daemon, its ports, the sim state dir and the lane specs."""

    base: Path
    topology: Topology
    config: Path
    router_port: int
    public_port: int
    sim_state: Path
    daemon: DaemonProc
    env: dict[str, str]
    baseline: Resources | None = None
    lane_pids: set[int] = field(default_factory=set)
    fault_started: float = 0.0
    healed_at: float = 0.0
    """When the fault ended (the kill itself, SIGCONT, the squatter gone): recovery counts
    from here."""
    last_unready_at: float | None = None
    ready_again_at: float | None = None
    _watcher: asyncio.Task[None] | None = None

    @property
    def urls(self) -> tuple[str, str]:
        return (
            f"http://127.0.0.1:{self.router_port}/v1/chat/completions",
            f"http://127.0.0.1:{self.public_port}/v1/chat/completions",
        )

    async def lanes(self) -> dict[str, LaneInfo]:
        infos = await self.daemon.lanes()
        self.lane_pids.update(i.pid for i in infos.values() if i.pid is not None)
        return infos

    async def all_ready(self, timeout: float = 60.0) -> dict[str, LaneInfo]:
        """Wait until the active lane of every role is ready (and no lane is failed)."""
        roles = {s.role for s in self.topology.lanes}
        deadline = time.monotonic() + timeout
        while True:
            infos = await self.lanes()
            ready = {i.role for i in infos.values() if i.active and i.state == "ready"}
            if ready == roles:
                return infos
            if time.monotonic() > deadline:
                got = {n: (i.state, i.active, i.reason) for n, i in infos.items()}
                raise AssertionError(f"lanes not back to ready after {timeout}s: {got}")
            await asyncio.sleep(0.1)

    def resources(self) -> Resources:
        return resources(self.daemon.pid)

    @contextlib.asynccontextmanager
    async def load(
        self,
        clients: int = 4,
        kinds: Sequence[tuple[str, bool]] = REQUEST_KINDS,
        rate: float | None = None,
    ) -> AsyncIterator[Load]:
        load = Load(self.urls, clients=clients, kinds=kinds, rate=rate)
        tasks = [asyncio.create_task(load.run_client(i)) for i in range(clients)]
        try:
            yield load
        finally:
            load.stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def fault_done(self, tally: Tally, load: Load, after: int = 40) -> Row:
        """After a fault: wait for every lane ready, keep the load going, take the row."""
        await self.all_ready()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        recovery = 0.0
        if self.last_unready_at is not None:
            back = self.ready_again_at or time.monotonic()
            recovery = max(0.0, back - self.healed_at)
        await load.requests_at_least(tally.requests + after)
        # Every request the window started counts, the slowest included; later ones do not.
        load.begin(f"after {tally.name}")
        await until(
            lambda: tally.in_flight == 0,
            timeout=load.client_timeout_s,
            what=f"the requests of {tally.name!r} to end",
            interval=0.05,
        )
        now = self.resources()
        before = self.baseline or now
        return Row(
            fault=tally.name,
            requests=tally.requests,
            ok=tally.ok,
            failed_before_first_byte=tally.failed_before_first_byte,
            failed_mid_stream=tally.failed_mid_stream,
            recovery_s=recovery,
            orphans=0,
            fds_before=before.fds,
            fds_after=now.fds,
            rss_before_mb=before.rss / 2**20,
            rss_after_mb=now.rss / 2**20,
            samples=tuple(tally.samples),
            longest_s=tally.longest_s,
            longest_stream_s=tally.longest_stream_s,
            statuses=tuple(sorted(tally.statuses.items())),
        )

    def mark_fault(self) -> None:
        """The fault starts now: watch the lanes until ``fault_done``."""
        self.fault_started = self.healed_at = time.monotonic()
        self.last_unready_at = self.ready_again_at = None
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    def healed(self) -> None:
        """The fault ends now (recovery is counted from here)."""
        self.healed_at = time.monotonic()

    async def _watch(self) -> None:
        """Note when a role's lane was last not ready, and when all were ready again."""
        roles = {s.role for s in self.topology.lanes}
        while True:
            try:
                infos = await self.lanes()
                ready = {i.role for i in infos.values() if i.active and i.state == "ready"}
                all_ready = ready == roles
            except (ControlError, aiohttp.ClientError, OSError):  # qwend killed, not back yet
                all_ready = False
            now = time.monotonic()
            if not all_ready:
                self.last_unready_at, self.ready_again_at = now, None
            elif self.last_unready_at is not None and self.ready_again_at is None:
                self.ready_again_at = now
            await asyncio.sleep(0.1)

    async def stop_daemon(self) -> list[int]:
        """SIGTERM the daemon, wait for it; the lane processes still alive (orphans)."""
        if self.daemon.proc.returncode is None:
            await self.lanes()
            self.daemon.descendants()
            self.daemon.send(signal.SIGTERM)
            await self.daemon.wait_exit(60)
        return await wait_gone(self.lane_pids | self.daemon.known_pids, 10.0)

    def lane_spec(self, name: str) -> LaneSpec:
        return next(s for s in self.topology.lanes if s.name == name)

    def rewrite_lane(self, name: str, **changes: Any) -> None:
        """Rewrite one lane's file (for a reload) with ``LaneSpec`` changes."""
        specs = [replace(s, **changes) if s.name == name else s for s in self.topology.lanes]
        self.topology = replace(self.topology, lanes=tuple(specs))
        path = self.config.parent / "lanes.d" / f"{name}.toml"
        doc = tomllib.loads(path.read_text())
        spec = self.lane_spec(name)
        lane = doc["lane"]
        fresh = lane_config(spec, lane["npus"][0], lane["port"])
        lane["command"] = list(fresh.command)
        path.write_bytes(tomli_w.dumps(doc).encode())


async def wait_gone(pids: set[int], timeout: float) -> list[int]:
    """PIDs of ``pids`` still alive (not zombies) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in sorted(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        if not alive or time.monotonic() > deadline:
            return alive
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def chaos_daemon(base: Path, topology: Topology | None = None) -> AsyncIterator[Rig]:
    """Start qwend on the topology, wait for every active lane ready; stop it at exit."""
    chosen = topology or Topology()
    sim_state = short_dir()
    cfg, router_port, public_port = write_rig_config(base, chosen)
    env = {"QWEND_SIM_STATE_DIR": str(sim_state)}
    try:
        async with run_daemon(cfg, env=env) as daemon:
            rig = Rig(base, chosen, cfg, router_port, public_port, sim_state, daemon, env)
            await rig.all_ready()
            yield rig
    finally:
        for leftover in sim_state.glob("*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            sim_state.rmdir()


def lane_group(info: LaneInfo) -> int:
    """The process group of a lane (its PID: lanes lead their own group)."""
    assert info.pid is not None, f"lane {info.name} has no PID: {info}"
    return os.getpgid(info.pid)
