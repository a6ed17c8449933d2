"""A port squatter during a promotion: a real qwend, sim lanes, router traffic, a real squatter.

The candidate lane (qwend-sim with a long model load) binds its port only when
loaded. A squatter binds that port during the load and answers ``/health`` and
``/v1/models`` like a lane. The promotion must roll back, naming the squatter,
and not one client request may reach it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from qwend.api.client import PromotionItem
from qwend.api.messages import PromotionOutcome, PromotionRecord
from qwend.config.model import HealthConfig, LaneConfig, RestartConfig, StopConfig
from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.lanescripts.factory import squatter_argv, wait_json
from tests.support.polling import SLACK_S, until
from tests.support.simlane import sim_command

pytestmark = pytest.mark.slow

MODEL = "Qwen3.5-9B"


def sim_lane(name: str, npu: int, *, load_s: float, standby: bool = False) -> LaneConfig:
    port = free_port()
    time_scale = 20.0
    command = sim_command(
        port,
        model=MODEL,
        variant="v3",
        lane_name=name,
        startup_delay=load_s * time_scale,  # the sim divides it by the time scale
        time_scale=time_scale,
    )
    command[command.index(str(port))] = "{port}"
    return LaneConfig(
        name=name,
        role="stable",
        variant=name,
        npus=(npu,),
        port=port,
        model=MODEL,
        command=tuple(command),
        standby=standby,
        health=HealthConfig(startup_timeout_s=120, interval_s=0.5, timeout_s=2),
        stop=StopConfig(timeout_s=5),
        restart=RestartConfig(backoff_min_s=0.5, backoff_max_s=1, crash_loop_limit=2),
    )


@dataclass
class Traffic:
    """Chat completions through the router, one after another per worker, until stopped."""

    url: str
    served_by: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self.stop.is_set():
                async with session.post(self.url, json=body) as resp:
                    data = await resp.json(content_type=None)
                    if resp.status != 200:
                        self.failures.append(f"{resp.status}: {data}")
                        continue
                    text = data["choices"][0]["message"]["content"]
                    lane = resp.headers.get("X-Qwend-Lane", "?")
                    self.served_by["squatter" if text == "squatted" else lane] += 1


async def test_a_promotion_to_a_lane_whose_port_is_squatted_rolls_back(tmp_path: Path) -> None:
    stable = sim_lane("stable", 4, load_s=0.05)
    candidate = sim_lane("candidate", 5, load_s=60.0, standby=True)
    router_port = free_port()
    cfg = write_config(tmp_path, [stable, candidate], router_port=router_port)
    squatter: subprocess.Popen[bytes] | None = None
    async with run_daemon(cfg) as d:
        await d.wait_lanes({"stable": "ready"})
        traffic = Traffic(f"http://127.0.0.1:{router_port}/v1/chat/completions")
        workers = [asyncio.create_task(traffic.worker()) for _ in range(3)]
        try:
            async with d.client() as client:
                stream = client.promote("candidate")
                promotion = asyncio.create_task(_record(stream))
                infos = await d.wait_lanes({"candidate": "starting"})
                assert infos["candidate"].pid is not None  # spawned, loading: port not bound
                squatter = subprocess.Popen(
                    squatter_argv(candidate.port, MODEL), start_new_session=True
                )
                await wait_json(f"{candidate.base_url}/squatter")
                record = await asyncio.wait_for(promotion, 6 * SLACK_S)
            after = sum(traffic.served_by.values()) + 20
            await until(lambda: sum(traffic.served_by.values()) >= after, what="more traffic")
        finally:
            traffic.stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
            if squatter is not None:
                captured = await wait_json(f"{candidate.base_url}/squatter")
                squatter.kill()
                squatter.wait(timeout=SLACK_S)
        assert squatter is not None
        assert captured == {"captured": 0}, f"the squatter captured requests: {captured}"
        assert traffic.served_by["squatter"] == 0
        assert set(traffic.served_by) == {"stable"}, traffic.served_by
        assert record.outcome is PromotionOutcome.ROLLED_BACK, record
        assert record.reason is not None
        assert f"PID {squatter.pid} (python" in record.reason
        assert not traffic.failures, traffic.failures[:5]
        infos = await d.lanes()
        assert infos["stable"].active and infos["stable"].state == "ready"
        assert not infos["candidate"].accepting


async def _record(stream: AsyncIterator[PromotionItem]) -> PromotionRecord:
    async for item in stream:
        if isinstance(item, PromotionRecord):
            return item
    raise AssertionError("the promotion stream ended without a record")
