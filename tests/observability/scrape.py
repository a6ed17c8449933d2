"""A real daemon with sim lanes and the sim's npu-smi, scraped: what ``/metrics`` exports."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from qwend.config.model import HealthConfig, LaneConfig, RestartConfig, StopConfig
from tests.support.daemonproc import DaemonProc, free_port, run_daemon, write_config
from tests.support.simlane import sim_command, sim_executable

MODEL = "Qwen/Qwen3.5-9B"


def sim_lane(name: str, role: str, npu: int) -> LaneConfig:
    """A ``qwend-sim`` lane (streams, reports usage, shows on the sim's npu-smi)."""
    port = free_port()
    command = sim_command(port, model=MODEL, variant="v3", lane_name=name, time_scale=50)
    command[command.index(str(port))] = "{port}"
    return LaneConfig(
        name=name,
        role=role,
        variant="v3",
        npus=(npu,),
        port=port,
        model=MODEL,
        command=tuple(command),
        health=HealthConfig(startup_timeout_s=60, interval_s=0.5, timeout_s=2, failure_threshold=3),
        stop=StopConfig(timeout_s=3),
        restart=RestartConfig(backoff_min_s=0.2, backoff_max_s=1),
    )


@dataclass
class Scraped:
    """A running daemon and its router URL."""

    daemon: DaemonProc
    router_url: str

    async def traffic(self, session: aiohttp.ClientSession, n: int = 3) -> None:
        """``n`` streamed and ``n`` whole chat completions through the router."""
        for stream in (True, False):
            for _ in range(n):
                body = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "hello"}],
                    "max_tokens": 8,
                    "stream": stream,
                }
                url = self.router_url + "/v1/chat/completions"
                async with session.post(url, json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()

    async def metrics(self, session: aiohttp.ClientSession) -> str:
        """The body of ``GET /metrics``."""
        async with session.get(self.router_url + "/metrics") as resp:
            assert resp.status == 200
            return await resp.text()


@asynccontextmanager
async def scraped_daemon(base: Path) -> AsyncIterator[Scraped]:
    """A daemon with two ready sim lanes (stable, throughput) and the sim's npu-smi."""
    sim_state = base / "sim"
    sim_state.mkdir(parents=True)
    lanes = [sim_lane("stable", "stable", 0), sim_lane("throughput", "throughput", 1)]
    monitor = {"npu_smi": f"{sim_executable()} npu-smi", "interval_s": 0.5, "timeout_s": 5}
    port = free_port()
    cfg = write_config(base / "etc", lanes, router_port=port, monitor=monitor)
    async with run_daemon(cfg, env={"QWEND_SIM_STATE_DIR": str(sim_state)}) as daemon:
        await daemon.wait_lanes({"stable": "ready", "throughput": "ready"}, timeout=60)
        yield Scraped(daemon, f"http://127.0.0.1:{port}")


_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def exported_names(text: str) -> set[str]:
    """Every series name a PromQL expression may use against this exposition."""
    names: set[str] = set()
    for family, kind in _TYPE.findall(text):
        names.add(family)
        if kind == "counter" and not family.endswith("_total"):
            names.add(family + "_total")
        elif kind == "histogram":
            names.update(family + s for s in ("_bucket", "_sum", "_count"))
    return names
