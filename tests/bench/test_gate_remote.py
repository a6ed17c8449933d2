"""The latency gate of a promotion to a remote lane: measured with the lane's own key.

A remote candidate started with ``--api-key`` (as ``vllm serve --api-key`` would be) is
reached by the router with its ``api_key_file``; the gate benches it inside the daemon
the same way, so a generous gate promotes it instead of refusing a candidate it could
not even ask.
"""

from __future__ import annotations

import json
from pathlib import Path

import tomli_w

from qwend.cli.exit import ExitStatus
from tests.promotion.test_e2e import qwenctl
from tests.promotion.test_e2e import sim_lane as local_lane
from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.simlane import DEFAULT_MODEL, SimLaneFactory

KEY = "sk-gate-remote-1"
GATE = ["--gate", "concurrency_8", "--max-regression", "900%", "--gate-repeat", "1",
        "--gate-time-scale", "20"]  # fmt: skip


async def test_the_gate_measures_a_keyed_remote_candidate_with_its_key(
    tmp_path: Path, sim_lane: SimLaneFactory, sim_state_dir: Path
) -> None:
    far = sim_lane(variant="v3", time_scale=20, extra=["--api-key", KEY])
    key = tmp_path / "far.key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    config = write_config(
        tmp_path / "etc", [local_lane("near", "stable", "baseline", 4, free_port())]
    )
    remote = {"role": "stable", "standby": True, "model": DEFAULT_MODEL, "url": far.base_url,
              "api_key_file": str(key), "health": {"interval_s": 0.5}}  # fmt: skip
    (config.parent / "lanes.d" / "far.toml").write_bytes(tomli_w.dumps({"lane": remote}).encode())
    async with run_daemon(config, env={"QWEND_SIM_STATE_DIR": str(sim_state_dir)}) as daemon:
        await daemon.wait_lanes({"near": "ready", "far": "stopped"})
        sock = daemon.control_socket
        code, out, err = await qwenctl(sock, "promote", "lane", "far", "--wait", "--json", *GATE)
        assert code == ExitStatus.OK, out + err
        code, out, _ = await qwenctl(sock, "status", "--json")
        [last] = json.loads(out)["last_promotions"][-1:]
        assert last["outcome"] == "promoted" and last["gate"]["accepted"], last
        assert last["gate"]["samples"] >= 1
        assert (await daemon.lanes())["far"].active
