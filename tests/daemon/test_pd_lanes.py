"""A prefill/decode pair on a real daemon: kv_role lane files, supervised sim lanes, the
router running the handshake, and the halves shown in status."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w

from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.simlane import DEFAULT_MODEL, sim_executable

MODEL = "Qwen3.5-9B"


def lane_file(lanes: Path, name: str, kv: list[str], kv_role: str, npu: int) -> None:
    command = [
        sim_executable(), "serve", "--port", "{port}", "--served-model-name", DEFAULT_MODEL,
        "--variant", "v3", "--lane-name", "{name}", "--time-scale", "50", *kv,
    ]  # fmt: skip
    table: dict[str, Any] = {
        "name": name, "role": name, "model": MODEL, "served_model": DEFAULT_MODEL,
        "npus": [npu], "port": free_port(), "command": command, "kv_role": kv_role,
    }  # fmt: skip
    (lanes / f"{name}.toml").write_bytes(tomli_w.dumps({"lane": table}).encode())


async def test_a_daemon_routes_through_its_prefill_and_decode_lanes(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [])
    lanes = cfg.parent / "lanes.d"
    lane_file(lanes, "p0", ["--kv-role", "prefill"], "prefill", 0)
    lane_file(lanes, "d0", ["--kv-role", "decode", "--kv-without", "refuse"], "decode", 1)
    router = "http://" + str(tomllib.loads(cfg.read_text())["router"]["listen"])
    async with run_daemon(cfg) as daemon:
        await daemon.wait_lanes({"p0": "ready", "d0": "ready"}, timeout=60)
        infos = await daemon.lanes()
        assert (infos["p0"].kv_role, infos["d0"].kv_role) == ("prefill", "decode")
        doc = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(router + "/v1/chat/completions", json=doc) as resp,
        ):
            answer = await resp.json()
            assert resp.status == 200, answer
            assert resp.headers["X-Qwend-Lane"] == "p0>d0"
        assert answer["model"] == MODEL and answer["usage"]["completion_tokens"] == 5
        assert answer["sim_timing"]["kv_from_remote"] is True
