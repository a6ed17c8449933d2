"""``qwenctl bench`` against a real qwend with the demo topology on sim lanes.

The router's answers carry ``X-Qwend-Lane``; the saved result attributes every
request to its lane and variant, and the attribution must match the routing policy
(images on the multimodal lane, text never there). A standby candidate started
isolated is benchmarked directly, before any promotion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from qwend.cli.exit import ExitStatus
from qwend.cli.main import main
from qwend.config.model import Capabilities, LaneConfig
from tests.promotion.test_e2e import BASE_READY, demo_lanes, monitor_table
from tests.support.daemonproc import run_daemon, write_config

pytestmark = pytest.mark.slow


async def qwenctl(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, list(argv), env, out, err)
    return code, out.getvalue(), err.getvalue()


def seed_lanes() -> list[LaneConfig]:
    """The demo topology, with the multimodal lane taking images only, as in the demo."""
    image_only = Capabilities(text=False, image=True)
    return [
        dataclasses.replace(lane, capabilities=image_only) if lane.name == "mm" else lane
        for lane in demo_lanes()
    ]


def by_kind(result: dict[str, Any]) -> dict[str, set[str]]:
    lanes: dict[str, set[str]] = {}
    for run in result["runs"]:
        for r in run["records"]:
            assert r["ok"], r
            lanes.setdefault(r["kind"], set()).add(r["lane"])
    return lanes


async def test_router_and_lane_targets_with_attribution(
    tmp_path: Path, sim_state_dir: Path
) -> None:
    config = write_config(tmp_path / "etc", seed_lanes(), monitor=monitor_table())
    async with run_daemon(config, env={"QWEND_SIM_STATE_DIR": str(sim_state_dir)}) as daemon:
        await daemon.wait_lanes(BASE_READY)
        env = {"QWEND_SOCKET": str(daemon.control_socket), "QWEND_BENCH_DIR": str(tmp_path / "r")}
        scale = ["--time-scale", "20"]
        code, out, err = await qwenctl(env, "bench", "--suite", "seed-router", *scale, "--json")
        assert code == ExitStatus.OK, err
        result = json.loads(out)
        meta = result["meta"]
        assert meta["target"] == "router" and meta["via_router"]
        assert len(meta["config_digest"]) == 64
        assert meta["lanes"] == {"mm": "baseline", "stable": "baseline", "throughput": "v3"}
        lanes = by_kind(result)
        assert lanes["mm_8"] == {"mm"}
        assert "mm" not in lanes["text_8"] | lanes["text_32"] | lanes["text_64"]
        # balanced_long_text splits long text over both text lanes
        assert lanes["text_64"] == {"stable", "throughput"}

        code, out, err = await qwenctl(
            env, "bench", "lane:stable", "--case", "concurrency_8", *scale
        )
        assert code == ExitStatus.OK, err
        row = next(line for line in out.splitlines() if line.startswith("concurrency_8"))
        assert "9.542" in row and "stable:8" in row  # the seed's baseline figure beside it

        # A standby candidate, started isolated (running, not routed), benchmarked directly.
        code, _, err = await qwenctl(env, "start", "lane", "chunk_v2")
        assert code == ExitStatus.OK, err
        await daemon.wait_lanes({"chunk_v2": "ready"})
        code, out, err = await qwenctl(env, "bench", "lane:chunk_v2", "--case", "text_8", *scale,
                                       "--json")  # fmt: skip
        assert code == ExitStatus.OK, err
        assert by_kind(json.loads(out)) == {"text_8": {"chunk_v2"}}
        assert (await daemon.lanes())["chunk_v2"].active is False
