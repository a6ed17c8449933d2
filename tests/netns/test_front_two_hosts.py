"""A front host routing to two other hosts' lanes, each host running its own qwend.

Three network namespaces on a bridge: ``h1`` and ``h2`` each run qwend supervising one
local sim lane (bound to the host's address), and ``front`` runs qwend with both as
remote lanes (roles stable and throughput). Streaming load runs inside ``front``
throughout. Pulling h2's cable takes its lane out of the front's rotation within the
health thresholds, the load moves to h1 with no request failed before its first byte,
and plugging it back brings h2 back. Stopping every qwend leaves no lane process on any
host, and no namespace behind. Root only (CI runs it, never skipped).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.daemonproc import run_daemon, write_config, write_lane
from tests.support.netload import assert_none_failed_early, start_load, stop_load
from tests.support.netns import (
    HEALTH,
    OUT_WITHIN_S,
    SLACK_S,
    Cluster,
    cluster_hosts,
    namespaces,
    require_netns,
)
from tests.support.simlane import DEFAULT_MODEL, sim_executable

pytestmark = pytest.mark.netns

MODEL = "Qwen3.5-9B"
LANE_PORT = 18210
ROUTER_PORT = 18289


def host_config(base: Path, name: str) -> Path:
    """qwend.toml of a back host: one local sim lane on every address of the host."""
    cfg = write_config(base / name, [])
    command = [
        sim_executable(), "serve", "--host", "0.0.0.0", "--port", "{port}",
        "--served-model-name", DEFAULT_MODEL, "--variant", "v3", "--lane-name", "{name}",
        "--time-scale", "50",
    ]  # fmt: skip
    write_lane(
        cfg.parent / "lanes.d",
        f"{name}-lane",
        {"role": "stable", "model": MODEL, "served_model": DEFAULT_MODEL, "npus": [0],
         "port": LANE_PORT, "command": command, "health": {"interval_s": 1.0}},
    )  # fmt: skip
    return cfg


def front_config(base: Path, net: Cluster) -> Path:
    """qwend.toml of the front host: h1's and h2's lanes as remote lanes."""
    cfg = write_config(base / "front", [], router_port=ROUTER_PORT)
    for host, role in (("h1", "stable"), ("h2", "throughput")):
        write_lane(
            cfg.parent / "lanes.d",
            host,
            {"role": role, "model": MODEL, "served_model": DEFAULT_MODEL,
             "url": f"http://{net.addr[host]}:{LANE_PORT}", "connect_timeout_s": 0.5,
             "health": HEALTH, "restart": {"backoff_min_s": 0.1, "backoff_max_s": 0.5}},
        )  # fmt: skip
    return cfg


async def test_a_front_host_routes_to_two_hosts_and_survives_one_losing_its_cable(
    tmp_path: Path,
) -> None:
    require_netns()
    with cluster_hosts(["front", "h1", "h2"]) as net:
        made = {*net.namespace.values(), net.bridge}
        load: subprocess.Popen[bytes] | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                backs = {
                    host: await stack.enter_async_context(
                        run_daemon(host_config(tmp_path, host), prefix=net.exec_in(host))
                    )
                    for host in ("h1", "h2")
                }
                for host, daemon in backs.items():
                    await daemon.wait_lanes({f"{host}-lane": "ready"}, timeout=60)
                front = await stack.enter_async_context(
                    run_daemon(front_config(tmp_path, net), prefix=net.exec_in("front"))
                )
                await front.wait_lanes({"h1": "ready", "h2": "ready"}, timeout=60)
                stop = tmp_path / "stop-load"
                load = start_load(
                    net.exec_in("front"), f"http://127.0.0.1:{ROUTER_PORT}", MODEL, stop
                )
                h2_before = await front.served("h2")
                h1_before = await front.completed("h1")
                net.link("h2", up=False)
                cut = time.monotonic()
                _, out = await front.wait_state(
                    "h2", {"unhealthy", "backoff", "starting"}, OUT_WITHIN_S + SLACK_S
                )
                assert (await front.lanes())["h1"].state == "ready"
                # Load while the cable is out and h2 is known to be out: all of it on h1.
                h1_out = await front.completed("h1")
                h1_during = await front.served("h1", h1_out + 20)
                net.link("h2", up=True)
                back, _ = await front.wait_state("h2", {"ready"}, 30)
                h2_after = await front.served("h2", h2_before)
                records = stop_load(load, stop)
                back_pids = {host: d.descendants() for host, d in backs.items()}
                assert all(back_pids.values()), "each back host runs its lane"
            # Every qwend has stopped (the exit stack), and with them their lanes.
            for host, daemon in backs.items():
                assert daemon.leftovers() == [], f"qwend on {host} left lane processes behind"
        finally:
            if load is not None and load.poll() is None:
                load.kill()
                load.wait(timeout=15)
    assert not made & set(namespaces()), "namespaces left behind"

    assert_none_failed_early(records)
    assert out - cut <= OUT_WITHIN_S + SLACK_S
    assert h2_before > 0 and h2_after > h2_before and h1_during > h1_out + 20 >= h1_before + 20
    during = [r for r in records if out < r["start"] < back]
    assert during and all(r["lane"] == "h1" for r in during), "the cut host was still routed"
