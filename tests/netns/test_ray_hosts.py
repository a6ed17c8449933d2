"""A Ray-backed lane on two hosts behind a front host, each host with its own qwend.

Three network namespaces on a bridge: node0 runs the Ray head (a ``qwend-sim ray start
--head --block`` member of the lane group ``ray``) and the engine lane ``big`` that runs
on the group (``qwend-sim serve --distributed-executor-backend ray``, tensor parallel 2:
one worker on each host's NPU), node1 runs a Ray worker node (``--address`` node0's head).
The front host's qwend routes the role to node0's engine as a remote lane and has a lane
of its own; streaming load runs inside the front throughout.

Killing node1's Ray node: the engine loses a worker and is stopped, the cluster restarts
as a unit (head first, new PIDs), the engine is started again only once the cluster is
whole, and the front serves on its own lane meanwhile. Pulling node1's cable: the engine
leaves rotation, node1's node ends without its head, and once the cable is back the
cluster restarts as a unit and the engine returns. No request fails before its first byte;
stopping every qwend leaves no process and no namespace. Root only (CI runs it).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.cluster.peerrig import add_cluster, token_file
from tests.netns.front import MEMBERS, MODEL, RESTART, group_ready, members_behind_a_front, sim
from tests.support.daemonproc import write_config, write_lane
from tests.support.netns import HEALTH, Cluster
from tests.support.simlane import DEFAULT_MODEL, sim_executable

pytestmark = pytest.mark.netns

LANE_PORT = 18330
RAY_PORT = 16379
PEER_PORT = 7712
ROUTER_PORT = 18399
LINK = ["--ray-heartbeat-s", "0.2", "--ray-heartbeat-timeout-s", "1.5"]


def ray_node(net: Cluster, host: str) -> list[str]:
    """The Ray node of ``host``: the head on node0, a worker joining it on node1."""
    argv = [sim_executable(), "ray", "start", "--block", "--node-ip-address", net.addr[host],
            "--num-gpus", "1", *LINK]  # fmt: skip
    if host == "node0":
        return [*argv, "--head", "--port", str(RAY_PORT)]
    return [*argv, "--address", f"{net.addr['node0']}:{RAY_PORT}"]


def member_config(base: Path, net: Cluster, host: str, token: Path) -> Path:
    """qwend.toml of a member host: its Ray node, the other member as a peer, and on node0
    the engine that runs on the cluster."""
    cfg = write_config(base / host, [], drain_timeout_s=1.0)
    other = next(m for m in MEMBERS if m != host)
    add_cluster(
        cfg,
        {"name": host, "listen": f"{net.addr[host]}:{PEER_PORT}", "token_file": str(token)},
        [{"name": other, "url": f"http://{net.addr[other]}:{PEER_PORT}", "timeout_s": 1.0}],
    )
    lanes = cfg.parent / "lanes.d"
    write_lane(
        lanes,
        "ray",
        {"role": "raycluster", "model": MODEL, "npus": [0], "command": ray_node(net, host),
         "health": HEALTH, "restart": RESTART, "group": {"members": list(MEMBERS)}},
    )  # fmt: skip
    if host == "node0":
        engine = sim(
            "--host", "0.0.0.0", "--port", "{port}",
            "--distributed-executor-backend", "ray", "--tensor-parallel-size", "2",
            "--ray-placement-timeout-s", "10", *LINK,
        )  # fmt: skip
        write_lane(
            lanes,
            "big",
            {"role": "stable", "model": MODEL, "served_model": DEFAULT_MODEL, "port": LANE_PORT,
             "runs_on": "ray", "command": engine, "health": HEALTH, "restart": RESTART,
             "env": {"RAY_ADDRESS": f"{net.addr['node0']}:{RAY_PORT}"}},
        )  # fmt: skip
    return cfg


@pytest.mark.timeout(300)
async def test_a_ray_backed_lane_restarts_with_its_cluster_while_the_front_serves_elsewhere(
    tmp_path: Path,
) -> None:
    token = token_file(tmp_path)
    async with members_behind_a_front(
        tmp_path,
        lambda net, host: member_config(tmp_path, net, host, token),
        lane_port=LANE_PORT,
        router_port=ROUTER_PORT,
    ) as rig:
        net, d = rig.net, rig.members
        head = await d["node0"].until_lane("ray", group_ready, "cluster ready", 60)
        assert head.group is not None
        assert [(m.host, m.status) for m in head.group.members] == [
            ("node0", "ready"), ("node1", "ready"),
        ]  # fmt: skip
        engine = await d["node0"].until_lane(
            "big", lambda i: i.state == "ready", "engine ready", 60
        )
        assert engine.runs_on == "ray" and engine.npus == ()
        assert engine.started_at is not None and head.started_at is not None
        worker = (await d["node1"].lanes())["ray"]
        assert worker.started_at is not None
        assert engine.started_at >= worker.started_at, "the engine waits for its cluster"
        front = await rig.start_front()
        await front.served("big", more_than=5)

        # 1. node1's Ray node killed: the engine and the cluster restart, in order.
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        back = await d["node0"].until_lane("ray", lambda i: group_ready(i, 1), "cluster back", 60)
        assert back.pid not in (None, head.pid), "the head restarted with its worker"
        again = await d["node0"].until_lane(
            "big", lambda i: i.state == "ready" and i.pid != engine.pid, "engine back", 60
        )
        new_worker = (await d["node1"].lanes())["ray"]
        assert new_worker.pid not in (None, worker.pid)
        assert again.started_at is not None and new_worker.started_at is not None
        assert again.started_at >= new_worker.started_at, "engine after its cluster"
        await front.served("big", more_than=await front.completed("big") + 5)

        # 2. node1's cable pulled: the engine leaves rotation; back with the cable.
        net.link("node1", up=False)
        await front.wait_state("big", {"unhealthy", "backoff", "starting"}, 60)
        # Cut off from its head, node1's node ends (Ray's raylet does without its GCS;
        # else node1's qwend would stop it): no half cluster keeps its NPUs.
        await d["node1"].until_lane(
            "ray", lambda i: i.pid is None, "node1's node ended without its head", 60
        )
        net.link("node1", up=True)
        await d["node0"].until_lane("ray", lambda i: group_ready(i, 2), "cluster", 90)
        await front.wait_lanes({"big": "ready"}, timeout=90)
        await front.served("big", more_than=await front.completed("big") + 5)
