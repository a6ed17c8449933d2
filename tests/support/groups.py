"""Lane groups in one process: each "host" a Supervisor with real qwend-sim data parallel
members (leader lane and ``--headless`` follower lane), and the peer link between them."""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from qwend.config.model import (
    Config,
    DaemonConfig,
    GroupConfig,
    LaneConfig,
    RestartConfig,
    StartOrder,
)
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import Supervisor
from tests.support.lanescripts.factory import FAST_HEALTH, FAST_RESTART
from tests.support.simlane import free_port, sim_command, sim_executable
from tests.support.simray import FAST_LINK

HOSTS = ("node0", "node1")


@dataclass
class Host:
    """One "host": its supervisor and the table its router reads."""

    name: str
    sup: Supervisor
    table: LaneTable


@dataclass
class FakeLink:
    """The peer link, in process: each host's supervisor; ``cut`` hosts do not answer."""

    hosts: dict[str, Host]
    cut: set[str] = field(default_factory=set)

    def _sup(self, host: str) -> Supervisor:
        if host in self.cut:
            raise OSError(f"{host} unreachable")
        return self.hosts[host].sup

    async def lane_state(self, host: str, lane: str) -> LaneState | None:
        if host in self.cut:
            return None
        return self._sup(host).lane_state(lane)

    async def start_lane(self, host: str, lane: str) -> None:
        await self._sup(host).start_lane(lane)

    async def stop_lane(self, host: str, lane: str) -> None:
        await self._sup(host).stop_lane(lane)


def member_lane(this: str, port: int, rpc: int, state_dir: Path) -> LaneConfig:
    """The member lane ``big`` as host ``this`` configures it."""
    leader = this == HOSTS[0]
    dp = [
        "--data-parallel-size", "2",
        "--data-parallel-size-local", "1",
        "--data-parallel-address", "127.0.0.1",
        "--data-parallel-rpc-port", str(rpc),
        "--dp-heartbeat-s", "0.1",
        "--dp-heartbeat-timeout-s", "1",
    ]  # fmt: skip
    if not leader:
        dp += ["--headless", "--data-parallel-start-rank", "1"]
    argv = sim_command(port, lane_name=f"big-{this}", startup_delay=0.2, extra=dp)
    return LaneConfig(
        name="big",
        role="stable",
        variant="v3",
        npus=(0,),
        port=port if leader else 0,
        model="qwen3.5-9b",
        command=tuple(argv),
        env={"QWEND_SIM_STATE_DIR": str(state_dir)},
        health=FAST_HEALTH,
        restart=FAST_RESTART,
        group=GroupConfig(members=HOSTS, this=this, start_order=StartOrder.LEADER_FIRST),
    )


async def make_hosts(
    tmp_path: Path, lead_extra: tuple[LaneConfig, ...] = (), restart: RestartConfig = FAST_RESTART
) -> AsyncGenerator[dict[str, Host], None]:
    """Both hosts' supervisors (``lead_extra``: more lanes on the leader's host)."""
    port, rpc = free_port(), free_port()
    made: dict[str, Host] = {}
    for name in HOSTS:
        lane = replace(member_lane(name, port, rpc, tmp_path / "sim-state"), restart=restart)
        lanes = (lane, *lead_extra) if name == HOSTS[0] else (lane,)
        cfg = Config(daemon=DaemonConfig(log_dir=tmp_path / name / "logs"), lanes=lanes)
        table = LaneTable()
        made[name] = Host(name, Supervisor(cfg, table), table)
    try:
        yield made
    finally:
        for host in made.values():
            await host.sup.shutdown(drain_timeout=0)


def pid(host: Host) -> int | None:
    return host.sup.snapshot("big").pid


def routed(host: Host) -> bool:
    lane = host.table.get("big")
    return lane is not None and lane.accepting


def ray_node_lane(this: str, state_dir: Path, head_port: int | None = None) -> LaneConfig:
    """The headless member ``ray`` of host ``this``. With ``head_port``, a real
    ``qwend-sim ray start --block`` node (the head on node0, a worker joining it); else a
    process that runs until stopped, a stand-in that tests qwend's own rules apart from
    any engine's behaviour."""
    if head_port is None:
        command: tuple[str, ...] = (sys.executable, "-c", "import time; time.sleep(3600)")
    else:
        role = ["--head", "--port", str(head_port)] if this == HOSTS[0] else [
            "--address", f"127.0.0.1:{head_port}"
        ]  # fmt: skip
        command = (sim_executable(), "ray", "start", "--block", "--node-name", this,
                   "--num-gpus", "1", *FAST_LINK, *role)  # fmt: skip
    return LaneConfig(
        name="ray",
        role="raycluster",
        variant="ray",
        npus=(1,),
        port=0,
        model="qwen3.5-9b",
        command=command,
        env={"QWEND_SIM_STATE_DIR": str(state_dir)},
        health=FAST_HEALTH,
        restart=FAST_RESTART,
        group=GroupConfig(members=HOSTS, this=this, start_order=StartOrder.LEADER_FIRST),
    )


def engine_lane(port: int, state_dir: Path, head_port: int | None = None) -> LaneConfig:
    """The lane ``engine`` on the leader's host, running on the group ``ray`` (with
    ``head_port``: on the sim's Ray cluster, tensor parallel over both nodes)."""
    on_ray = [] if head_port is None else [
        "--distributed-executor-backend", "ray", "--tensor-parallel-size", "2", *FAST_LINK
    ]  # fmt: skip
    env = {"QWEND_SIM_STATE_DIR": str(state_dir)}
    if head_port is not None:
        env["RAY_ADDRESS"] = f"127.0.0.1:{head_port}"
    return LaneConfig(
        name="engine",
        role="stable",
        variant="v3",
        npus=(),
        port=port,
        model="qwen3.5-9b",
        command=tuple(sim_command(port, lane_name="engine", startup_delay=0.2, extra=on_ray)),
        env=env,
        health=FAST_HEALTH,
        restart=FAST_RESTART,
        runs_on="ray",
    )


async def make_ray_hosts(
    tmp_path: Path,
    *,
    sim_ray: bool = False,
    restart: RestartConfig = FAST_RESTART,
    pre_start: Callable[[LaneConfig], Awaitable[str | None]] | None = None,
) -> AsyncGenerator[dict[str, Host], None]:
    """Both hosts' supervisors: the group ``ray`` of headless members, and on the
    leader's host the lane ``engine`` that runs on it (``sim_ray``: real sim Ray nodes and
    an engine on them, else stand-ins)."""
    state = tmp_path / "sim-state"
    head = free_port() if sim_ray else None
    made: dict[str, Host] = {}
    for name in HOSTS:
        lanes: tuple[LaneConfig, ...] = (ray_node_lane(name, state, head),)
        if name == HOSTS[0]:
            lanes = (*lanes, engine_lane(free_port(), state, head))
        lanes = tuple(replace(lane, restart=restart) for lane in lanes)
        cfg = Config(daemon=DaemonConfig(log_dir=tmp_path / name / "logs"), lanes=lanes)
        table = LaneTable()
        check = pre_start if name == HOSTS[0] else None  # the leader host's NPU check
        made[name] = Host(name, Supervisor(cfg, table, pre_start=check), table)
    try:
        yield made
    finally:
        for host in made.values():
            await host.sup.shutdown(drain_timeout=0)
