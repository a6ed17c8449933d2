"""A multi-node lane group on two hosts behind a front host, each host with its own qwend.

Three network namespaces on a bridge: node0 runs the group's leader member (a qwend-sim
data parallel leader serving on node0's address), node1 its ``--headless`` follower, and
the two qwends are peers of each other with a shared token. The front host's qwend routes
the role to node0's leader as a remote lane and has a local lane of its own. Streaming
load runs inside the front throughout. Killing the follower's process: the group restarts
as a unit (the leader restarted too, before the follower), the front keeps serving on its
own lane meanwhile, and no request fails before its first byte. Stopping every qwend
leaves no lane process on any host and no namespace. Root only (CI runs it).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.peerrig import add_cluster, token_file
from tests.netns.front import MEMBERS, MODEL, RESTART, group_ready, members_behind_a_front, sim
from tests.support.daemonproc import write_config, write_lane
from tests.support.netns import HEALTH, Cluster
from tests.support.simlane import DEFAULT_MODEL

pytestmark = pytest.mark.netns

LANE_PORT = 18320
RPC_PORT = 18321
PEER_PORT = 7711
ROUTER_PORT = 18389


def member_config(base: Path, net: Cluster, host: str, token: Path) -> Path:
    """qwend.toml of a member host: the group lane ``big`` and the other member as a peer."""
    cfg = write_config(base / host, [], drain_timeout_s=1.0)
    other = next(m for m in MEMBERS if m != host)
    add_cluster(
        cfg,
        {"name": host, "listen": f"{net.addr[host]}:{PEER_PORT}", "token_file": str(token)},
        [{"name": other, "url": f"http://{net.addr[other]}:{PEER_PORT}", "timeout_s": 1.0}],
    )
    dp = [
        "--data-parallel-size", "2", "--data-parallel-size-local", "1",
        "--data-parallel-address", net.addr["node0"],
        "--data-parallel-rpc-port", str(RPC_PORT),
        "--dp-heartbeat-s", "0.2", "--dp-heartbeat-timeout-s", "1.5",
    ]  # fmt: skip
    table: dict[str, Any] = {
        "role": "stable", "model": MODEL, "served_model": DEFAULT_MODEL, "npus": [0],
        "health": HEALTH, "restart": RESTART, "group": {"members": list(MEMBERS)},
    }  # fmt: skip
    if host == "node0":
        table |= {"port": LANE_PORT, "command": sim("--host", "0.0.0.0", "--port", "{port}", *dp)}
    else:
        dp += ["--headless", "--data-parallel-start-rank", "1"]
        table |= {"command": sim(*dp)}
    write_lane(cfg.parent / "lanes.d", "big", table)
    return cfg


async def test_a_killed_follower_restarts_its_group_while_the_front_serves_elsewhere(
    tmp_path: Path,
) -> None:
    token = token_file(tmp_path)
    async with members_behind_a_front(
        tmp_path,
        lambda net, host: member_config(tmp_path, net, host, token),
        lane_port=LANE_PORT,
        router_port=ROUTER_PORT,
    ) as rig:
        d = rig.members
        leader = await d["node0"].until_lane("big", group_ready, "group ready", 60)
        assert leader.group is not None and leader.group.restarts == 0, leader.group
        assert [(m.host, m.status) for m in leader.group.members] == [
            ("node0", "ready"), ("node1", "ready"),
        ]  # fmt: skip
        follower = (await d["node1"].lanes())["big"]
        assert follower.state == "ready" and follower.pid is not None
        assert follower.group is not None and follower.group.leader == "node0"
        front = await rig.start_front()
        await front.served("big", more_than=5)

        now = (await d["node0"].lanes())["big"]
        assert now.group is not None
        old_leader_pid, restarts = now.pid, now.group.restarts
        follower = (await d["node1"].lanes())["big"]
        assert follower.pid is not None
        os.kill(follower.pid, signal.SIGKILL)
        restarted = await d["node0"].until_lane(
            "big", lambda i: group_ready(i, restarts + 1), "group back", 60
        )
        assert restarted.pid not in (None, old_leader_pid), "the leader restarted too"
        again = (await d["node1"].lanes())["big"]
        assert again.pid not in (None, follower.pid)
        assert restarted.started_at is not None and again.started_at is not None
        assert restarted.started_at <= again.started_at, "leader first"
        await front.served("big", more_than=await front.completed("big") + 5)
