"""Three hosts, each with its own qwend, peers of each other over their private addresses.

One network namespace per host on a bridge; each qwend listens for peers on its host's
address with a shared token. From node0: every host's lanes, and a promotion on node1's
lane through node0's link. Pulling node2's cable: node2 is shown unreachable within its
peer deadline while node0's own part still answers at once, and it is back when the cable
is. Stopping every qwend leaves no lane process and no namespace behind. Root only (CI
runs it, never skipped).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from qwend.api.client import ControlClient
from qwend.api.messages import ClusterResponse, LaneAction, PromotionOutcome, PromotionRecord
from qwend.config.model import LaneConfig
from tests.cluster.peerrig import add_cluster, token_file
from tests.support.daemonproc import DaemonProc, run_daemon, write_config
from tests.support.lanescripts.factory import make_lane
from tests.support.netns import Cluster, cluster_hosts, namespaces, require_netns

pytestmark = pytest.mark.netns

PEER_PORT = 7710
PEER_TIMEOUT_S = 1.0
SLACK_S = 5.0
"""For a loaded 2-core machine: scheduling, not the deadline logic."""
HOSTS = ("node0", "node1", "node2")


def config(base: Path, net: Cluster, name: str, lanes: list[LaneConfig], token: Path) -> Path:
    cfg = write_config(base / name, lanes, drain_timeout_s=1.0)
    add_cluster(
        cfg,
        {"name": name, "listen": f"{net.addr[name]}:{PEER_PORT}", "token_file": str(token)},
        [
            {"name": peer, "url": f"http://{net.addr[peer]}:{PEER_PORT}",
             "timeout_s": PEER_TIMEOUT_S}
            for peer in HOSTS
            if peer != name
        ],
    )  # fmt: skip
    return cfg


async def _view(daemon: DaemonProc) -> tuple[ClusterResponse, float]:
    async with daemon.client() as client:
        started = time.monotonic()
        view = await client.cluster()
        return view, time.monotonic() - started


async def test_status_and_promotion_across_hosts_and_a_cut_peer(tmp_path: Path) -> None:
    require_netns()
    token = token_file(tmp_path)
    lanes = {
        "node0": [make_lane("a", npus=(0,))],
        "node1": [make_lane("b", npus=(0,)), make_lane("b2", role="b", npus=(1,), standby=True)],
        "node2": [make_lane("c", npus=(0,))],
    }
    with cluster_hosts(HOSTS) as net:
        made = {*net.namespace.values(), net.bridge}
        async with contextlib.AsyncExitStack() as stack:
            d = {
                host: await stack.enter_async_context(
                    run_daemon(
                        config(tmp_path, net, host, lanes[host], token), prefix=net.exec_in(host)
                    )
                )
                for host in HOSTS
            }
            for host, first in (("node0", "a"), ("node1", "b"), ("node2", "c")):
                await d[host].wait_lanes({first: "ready"}, timeout=60)

            view, _ = await _view(d["node0"])
            assert [(h.name, h.reachable) for h in view.hosts] == [
                ("node0", True), ("node1", True), ("node2", True)
            ]  # fmt: skip
            seen = {h.name: [lane.name for lane in h.status.lanes] for h in view.hosts if h.status}
            assert seen == {"node0": ["a"], "node1": ["b", "b2"], "node2": ["c"]}

            # A promotion on node1's lane, asked on node0.
            async with ControlClient(d["node0"].control_socket, timeout_s=120, host="node1") as c:
                await c.lane_action("b2", LaneAction.START)
                await d["node1"].wait_lanes({"b2": "ready"}, timeout=60)
                items = [item async for item in c.promote("b2")]
            assert isinstance(items[-1], PromotionRecord), items
            assert items[-1].outcome is PromotionOutcome.PROMOTED, items[-1].reason
            async with d["node1"].client() as c1:
                assert (await c1.status()).active["b"] == "b2"

            # node2's cable out: unreachable within its deadline; node0 still answers.
            net.link("node2", up=False)
            view, took = await _view(d["node0"])
            node2 = view.host("node2")
            assert node2 is not None and not node2.reachable, node2
            assert "node2" in node2.error
            assert [h.name for h in view.hosts if h.reachable] == ["node0", "node1"]
            assert took < PEER_TIMEOUT_S + SLACK_S, took
            async with d["node0"].client() as c0:
                started = time.monotonic()
                local = await c0.status()
                local_took = time.monotonic() - started
            assert [lane.name for lane in local.lanes] == ["a"]
            assert local_took < SLACK_S, local_took
            net.link("node2", up=True)

            # Each ask is bounded by the peer deadline: polling needs no sleep of its own.
            deadline = time.monotonic() + 30
            while not (await _view(d["node0"]))[0].hosts[2].reachable:
                assert time.monotonic() < deadline, "node2 not back after its cable was"
        for host, daemon in d.items():
            assert daemon.leftovers() == [], f"qwend on {host} left lane processes behind"
    assert not made & set(namespaces()), "namespaces left behind"
