"""What the multi-node lane tests on namespaces share: sim lanes, the member hosts and
the front host that routes to node0 as a remote lane beside a lane of its own (with load
through it and the checks once everything stopped), and a group readiness check."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from qwend.api.messages import LaneInfo
from tests.support.daemonproc import DaemonProc, run_daemon, write_config, write_lane
from tests.support.netload import assert_none_failed_early, start_load, stop_load
from tests.support.netns import HEALTH, Cluster, cluster_hosts, namespaces, require_netns
from tests.support.simlane import DEFAULT_MODEL, sim_executable

MODEL = "Qwen3.5-9B"
RESTART = {"backoff_min_s": 0.1, "backoff_max_s": 0.5}
MEMBERS = ("node0", "node1")


def sim(*extra: str) -> list[str]:
    """A sim lane's command (placeholders for its port and name)."""
    return [
        sim_executable(), "serve", "--served-model-name", DEFAULT_MODEL, "--variant", "v3",
        "--lane-name", "{name}", "--time-scale", "50", "--startup-delay", "0.2", *extra,
    ]  # fmt: skip


def front_config(base: Path, net: Cluster, lane_port: int, router_port: int) -> Path:
    """qwend.toml of the front: node0's lane ``big`` (at ``lane_port``) as a remote lane,
    and a lane of its own of another role."""
    cfg = write_config(base / "front", [], router_port=router_port)
    lanes = cfg.parent / "lanes.d"
    write_lane(
        lanes,
        "big",
        {"role": "stable", "model": MODEL, "served_model": DEFAULT_MODEL,
         "url": f"http://{net.addr['node0']}:{lane_port}", "connect_timeout_s": 0.5,
         "health": HEALTH, "restart": RESTART},
    )  # fmt: skip
    write_lane(
        lanes,
        "own",
        {"role": "throughput", "model": MODEL, "served_model": DEFAULT_MODEL, "npus": [0],
         "port": lane_port, "command": sim("--host", "127.0.0.1", "--port", "{port}"),
         "health": HEALTH},
    )  # fmt: skip
    return cfg


def group_ready(info: LaneInfo, restarts: int = 0) -> bool:
    """The lane's group is ready, after at least ``restarts`` restarts."""
    group = info.group
    return group is not None and group.state == "ready" and group.restarts >= restarts


@dataclass
class Rig:
    """Member hosts running, a front host to start, and the load through it."""

    net: Cluster
    base: Path
    lane_port: int
    router_port: int
    stack: contextlib.AsyncExitStack
    members: dict[str, DaemonProc] = field(default_factory=dict)
    front: DaemonProc | None = None
    load: subprocess.Popen[bytes] | None = None
    stop: Path | None = None

    async def start_front(self) -> DaemonProc:
        """The front host's qwend, once both its lanes are ready, with streaming load
        running inside it until the rig closes."""
        cfg = front_config(self.base, self.net, self.lane_port, self.router_port)
        front = await self.stack.enter_async_context(
            run_daemon(cfg, prefix=self.net.exec_in("front"))
        )
        self.front = front
        await front.wait_lanes({"big": "ready", "own": "ready"}, timeout=60)
        self.stop = self.base / "stop-load"
        url = f"http://127.0.0.1:{self.router_port}"
        self.load = start_load(self.net.exec_in("front"), url, MODEL, self.stop)
        return front


@contextlib.asynccontextmanager
async def members_behind_a_front(
    base: Path,
    member_config: Callable[[Cluster, str], Path],
    *,
    lane_port: int,
    router_port: int,
) -> AsyncIterator[Rig]:
    """Namespaces for the front and ``MEMBERS``, each member's qwend started from
    ``member_config(net, host)``. When the test's body is done: the load stops, every qwend
    stops, and no lane process, namespace or request failed before its first byte may be
    left (both the front's lanes served)."""
    require_netns()
    with cluster_hosts(["front", *MEMBERS]) as net:
        made = {*net.namespace.values(), net.bridge}
        rig: Rig | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                rig = Rig(net, base, lane_port, router_port, stack)
                for host in MEMBERS:
                    cfg = member_config(net, host)
                    rig.members[host] = await stack.enter_async_context(
                        run_daemon(cfg, prefix=net.exec_in(host))
                    )
                yield rig
                assert rig.load is not None and rig.stop is not None, "start_front was not called"
                records = stop_load(rig.load, rig.stop)
            for host, daemon in rig.members.items():
                assert daemon.leftovers() == [], f"qwend on {host} left lane processes behind"
            assert rig.front is not None and rig.front.leftovers() == []
        finally:
            if rig is not None and rig.load is not None and rig.load.poll() is None:
                rig.load.kill()
                rig.load.wait(timeout=15)
    assert not made & set(namespaces()), "namespaces left behind"
    assert_none_failed_early(records)
    lanes = {r["lane"] for r in records}
    assert {"big", "own"} <= lanes, lanes
