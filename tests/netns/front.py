"""What the multi-node lane tests on namespaces share: sim lanes, the front host that
routes to node0 as a remote lane beside a lane of its own, and a group readiness check."""

from __future__ import annotations

from pathlib import Path

from qwend.api.messages import LaneInfo
from tests.support.daemonproc import write_config, write_lane
from tests.support.netns import HEALTH, Cluster
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
