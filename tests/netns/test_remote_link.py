"""A remote lane across a real link: two network namespaces, a veth pair, the cable pulled.

The far "host" runs a key-protected sim lane; the front "host" runs qwend with that lane
as a remote lane (role stable) and a local sim lane (role throughput) it spawns itself.
Streaming load runs inside the front namespace throughout. Pulling the far host's cable
(its veth end down) takes the remote lane out of rotation within its health thresholds
while the local lane keeps serving, and no request fails before its first byte; plugging
it back brings the remote lane back into rotation. Root only (CI runs it, never skipped).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.config_fixtures import sim_command as lane_sim_command
from tests.support.daemonproc import run_daemon, write_config, write_lane
from tests.support.netload import assert_none_failed_early, start_load, stop_load
from tests.support.netns import (
    HEALTH,
    OUT_WITHIN_S,
    SLACK_S,
    Hosts,
    namespaces,
    require_netns,
    two_hosts,
)
from tests.support.simlane import DEFAULT_MODEL, sim_command, sim_executable

pytestmark = pytest.mark.netns

KEY = "sk-far-host-5c1e"
MODEL = "Qwen3.5-9B"
SIM_PORT = 18200
LOCAL_PORT = 18201
ROUTER_PORT = 18288


def configure(base: Path, hosts: Hosts, key: Path, state: Path) -> Path:
    cfg = write_config(base, [], router_port=ROUTER_PORT)
    lanes = cfg.parent / "lanes.d"
    far = {
        "name": "far",
        "role": "stable",
        "model": MODEL,
        "served_model": DEFAULT_MODEL,
        "url": f"http://{hosts.far_addr}:{SIM_PORT}",
        "api_key_file": str(key),
        "connect_timeout_s": 0.5,
        "health": HEALTH,
        "restart": {"backoff_min_s": 0.1, "backoff_max_s": 0.5},
    }
    near = {
        "name": "near",
        "role": "throughput",
        "model": MODEL,
        "npus": [0],
        "port": LOCAL_PORT,
        "command": [sim_executable(), *lane_sim_command("v3")[1:], "--time-scale", "50"],
        "env": {"QWEND_SIM_STATE_DIR": str(state)},
        "health": {"interval_s": 1.0},
    }
    write_lane(lanes, "far", far)
    write_lane(lanes, "near", near)
    return cfg


def end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, the process this test started (by its PID)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


async def test_pulling_the_far_hosts_cable_takes_its_lane_out_and_back(tmp_path: Path) -> None:
    require_netns()
    key = tmp_path / "far.key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    state = tmp_path / "sim-state"
    state.mkdir()
    env = {**os.environ, "QWEND_SIM_STATE_DIR": str(state)}
    with two_hosts() as hosts:
        sim_argv = sim_command(
            SIM_PORT, host=hosts.far_addr, time_scale=50, extra=["--api-key", KEY]
        )
        with (tmp_path / "far-sim.log").open("wb") as log:
            sim = subprocess.Popen(
                [*hosts.exec_in(hosts.far), *sim_argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        load: subprocess.Popen[bytes] | None = None
        try:
            cfg = configure(tmp_path / "etc", hosts, key, state)
            async with run_daemon(cfg, prefix=hosts.exec_in(hosts.front), env=env) as daemon:
                await daemon.wait_lanes({"far": "ready", "near": "ready"}, timeout=60)
                stop = tmp_path / "stop-load"
                load = start_load(
                    hosts.exec_in(hosts.front), f"http://127.0.0.1:{ROUTER_PORT}", MODEL, stop
                )
                await asyncio.sleep(0)  # the load runs on its own; phases follow lane states
                far_before = await daemon.served("far")

                near_before = await daemon.served("near")
                hosts.far_link(up=False)
                cut = time.monotonic()
                _, out = await daemon.wait_state(
                    "far", {"unhealthy", "backoff", "starting"}, OUT_WITHIN_S + SLACK_S
                )
                assert (await daemon.lanes())["near"].state == "ready"
                # Some load while the cable is out, all of it on the local lane.
                near_during = await daemon.served("near", near_before + 20)

                hosts.far_link(up=True)
                not_back, _ = await daemon.wait_state("far", {"ready"}, 30)
                far_after = await daemon.served("far", far_before)
                records = stop_load(load, stop)
            assert daemon.leftovers() == [], "qwend left lane processes behind"
        finally:
            if load is not None and load.poll() is None:
                end(load)
            end(sim)
    assert not {hosts.far, hosts.front} & set(namespaces()), "namespaces left behind"

    assert_none_failed_early(records)
    assert out - cut <= OUT_WITHIN_S + SLACK_S
    assert far_before > 0 and far_after > far_before and near_during > near_before + 20
    during = [r for r in records if out < r["start"] < not_back]
    assert all(r["lane"] == "near" for r in during), "the cut lane was still routed"
