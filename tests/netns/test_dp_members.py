"""qwend-sim's data parallel members on two "hosts": the leader serves once the headless
follower joined across the bridge, and a pulled cable (no FIN, only silence) ends both
within the heartbeat timeout, as vLLM's engines end when a node drops out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.netns import Cluster, cluster_hosts, require_netns
from tests.support.polling import wait_for
from tests.support.simlane import sim_command

pytestmark = pytest.mark.netns

API_PORT = 18310
RPC_PORT = 18311
HEARTBEAT_TIMEOUT_S = 1.5

HEALTH = (
    "import sys, urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)\n"
    "except Exception as e:\n"
    "    print('down', type(e).__name__)\n"
)


def member(net: Cluster, host: str, leader: str, log: Path, state: Path) -> subprocess.Popen[bytes]:
    dp = [
        "--data-parallel-size", "2",
        "--data-parallel-size-local", "1",
        "--data-parallel-address", net.addr[leader],
        "--data-parallel-rpc-port", str(RPC_PORT),
        "--dp-heartbeat-s", "0.2",
        "--dp-heartbeat-timeout-s", str(HEARTBEAT_TIMEOUT_S),
    ]  # fmt: skip
    if host != leader:
        dp += ["--headless", "--data-parallel-start-rank", "1"]
    argv = sim_command(
        API_PORT, host=net.addr[host], lane_name=f"big-{host}", startup_delay=0.2, extra=dp
    )
    env = {**os.environ, "QWEND_SIM_STATE_DIR": str(state)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [*net.exec_in(host), *argv], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def health(net: Cluster, host: str) -> str:
    url = f"http://{net.addr[host]}:{API_PORT}/health"
    done = subprocess.run(
        [*net.exec_in(host), sys.executable, "-c", HEALTH, url],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_a_pulled_cable_ends_the_leader_and_its_follower(tmp_path: Path) -> None:
    require_netns()
    with cluster_hosts(["node0", "node1"]) as net:
        logs = {h: tmp_path / f"{h}.log" for h in net.names}
        procs = {h: member(net, h, "node0", logs[h], tmp_path / h) for h in net.names}
        try:
            wait_for(lambda: health(net, "node0") == "200", 30, "the leader serving")
            assert "joined the DP leader" in logs["node1"].read_text()
            net.link("node1", up=False)
            cut = time.monotonic()
            assert procs["node0"].wait(timeout=30) == 1
            assert procs["node1"].wait(timeout=30) == 1
            # Bounded by the heartbeat timeout (plus a loaded machine's slack), not by TCP's
            # minutes-long retransmission timeout.
            assert time.monotonic() - cut < HEARTBEAT_TIMEOUT_S + 10
            assert "no heartbeat for 1.5s" in logs["node0"].read_text()
            assert "DP leader lost" in logs["node1"].read_text()
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
