"""``qwenctl verify`` against a real qwend with the seed topology on sim lanes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwend.cli.exit import ExitStatus
from tests.bench.test_daemon_bench import qwenctl, seed_lanes
from tests.promotion.test_e2e import BASE_READY, monitor_table
from tests.support.daemonproc import run_daemon, write_config

pytestmark = pytest.mark.slow

SMALL = ["--requests", "3", "--total", "10", "--concurrency", "5", "--gsm8k-samples", "3",
         "--max-tokens", "32"]  # fmt: skip


async def test_complete_report_against_the_demo_topology(
    tmp_path: Path, sim_state_dir: Path
) -> None:
    config = write_config(tmp_path / "etc", seed_lanes(), monitor=monitor_table())
    async with run_daemon(config, env={"QWEND_SIM_STATE_DIR": str(sim_state_dir)}) as daemon:
        await daemon.wait_lanes(BASE_READY)
        await daemon.wait_notify(lambda m: m.startswith("STATUS=") and "3/3" in m, timeout=30)
        env = {"QWEND_SOCKET": str(daemon.control_socket)}
        out_file = tmp_path / "report.md"
        code, out, err = await qwenctl(env, "verify", *SMALL, "--output", str(out_file))
        assert code == ExitStatus.OK, out + err
        for title in ("Environment", "Endpoints", "Routes", "Latency", "Throughput", "GSM8K"):
            assert title in out
        assert out_file.read_text() == out
        assert "| chat with an image | 200 |" in out
        assert "lanes | simulated (qwend-sim)" in out
        code, out, err = await qwenctl(env, "verify", *SMALL, "--json")
        assert code == ExitStatus.OK, err
        report = json.loads(out)
        sections = {s["title"]: s for s in report["sections"]}
        assert report["simulated"] and report["ok"]
        assert sections["Environment"]["verdict"] == "pass"
        npus = {row[0] for row in sections["Environment"]["tables"][0]["rows"]}
        assert npus == {"3.0", "4.0", "7.0"}  # the NPUs the active lanes use
        routes = {row[0]: row[1] for row in sections["Routes"]["tables"][0]["rows"]}
        assert routes["image"] == "mm" and routes["long text"] in ("stable", "throughput")
        assert sections["Routes"]["verdict"] == "pass"
        assert sections["Throughput"]["data"]["succeeded"] == 10
        assert sections["Accuracy (GSM8K)"]["verdict"] == "info"  # simulated: measures nothing
        # One lane directly: no routes section, and still a complete report.
        code, out, err = await qwenctl(env, "verify", "lane:throughput", *SMALL, "--json")
        assert code == ExitStatus.OK, err
        sections = {s["title"]: s for s in json.loads(out)["sections"]}
        assert sections["Routes"]["verdict"] == "skipped"
        lanes = sections["Environment"]["tables"][-1]["rows"]
        assert [row[:2] for row in lanes] == [["throughput", "v3"]]
