"""``qwenctl promote --gate`` under live load: a slower candidate is refused, a faster one promoted.

A real qwend with the demo topology on sim lanes (20x real time) and a constant
stream of OpenAI-client requests through the router. The gate benches incumbent
and candidate on ``concurrency_8`` inside the daemon, before the candidate is
routed; both outcomes are in the promotion history that ``qwenctl status`` shows.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from qwend.cli.exit import ExitStatus
from tests.promotion.test_e2e import (
    BASE_READY,
    Load,
    demo_lanes,
    monitor_table,
    qwenctl,
    router_url,
    sim_lane,
    status_json,
)
from tests.support.daemonproc import free_port, run_daemon, write_config

pytestmark = pytest.mark.slow

GATE = ["--gate", "concurrency_8", "--max-regression", "5%", "--gate-repeat", "2",
        "--gate-time-scale", "20"]  # fmt: skip


async def test_gate_refuses_slower_and_promotes_faster_under_load(
    tmp_path: Path, sim_state_dir: Path
) -> None:
    # "slow": a baseline build as a throughput candidate on its own NPU (blue/green vs v3).
    lanes = [
        *demo_lanes(),
        sim_lane("slow", "throughput", "baseline", 6, free_port(), standby=True),
    ]
    config = write_config(tmp_path / "etc", lanes, monitor=monitor_table())
    async with run_daemon(config, env={"QWEND_SIM_STATE_DIR": str(sim_state_dir)}) as daemon:
        await daemon.wait_lanes(BASE_READY)
        sock = daemon.control_socket
        load = Load(router_url(config))

        refuse = asyncio.ensure_future(qwenctl(sock, "promote", "lane", "slow", "--wait", *GATE))
        code, out, err = await load.run_during(refuse)
        assert code == ExitStatus.GATE_REFUSED, out + err
        assert "gate refused: slow stopped" in out and "benchmarking" in out
        assert load.failures == [], load.failures[:5]
        infos = await daemon.wait_lanes({"slow": "stopped", "throughput": "ready"})
        assert infos["throughput"].active

        load = Load(router_url(config))
        accept = asyncio.ensure_future(
            qwenctl(sock, "promote", "lane", "recurrent_v2", "--wait", "--json", *GATE)
        )
        code, out, err = await load.run_during(accept, served_by="recurrent_v2")
        assert code == ExitStatus.OK, out + err
        record = json.loads(out.splitlines()[-1])["data"]
        assert record["outcome"] == "promoted" and record["mode"] == "in_place"
        gate = record["gate"]
        assert gate["accepted"] and gate["ratio_high"] < 1
        assert (gate["incumbent"], gate["candidate"], gate["samples"]) == (
            "stable", "recurrent_v2", 16,
        )  # fmt: skip
        assert load.failures == [], load.failures[:5]

        status = await status_json(sock)
        assert status["active"]["stable"] == "recurrent_v2"
        refused, promoted = status["last_promotions"][-2:]
        assert refused["outcome"] == "refused" and not refused["gate"]["accepted"]
        assert refused["gate"]["candidate_wall_s"] > refused["gate"]["incumbent_wall_s"]
        assert promoted["gate"]["accepted"]
        code, human, err = await qwenctl(sock, "status")
        assert code == ExitStatus.OK, err
        assert "gate concurrency_8: slow" in human and ": refused" in human
        assert "gate concurrency_8: recurrent_v2" in human and ": accepted" in human
