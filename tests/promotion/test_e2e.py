"""End to end: a real qwend with qwend-sim lanes, promoted by the real qwenctl under load.

Each test writes the demo topology (sim lanes on free ports, the sim's fake
npu-smi) to a temporary config, runs the daemon (tests/daemonproc.py), keeps
a constant stream of OpenAI-client requests going through the router, and
drives promotions with the ``qwenctl`` console script as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

from qwend.cli.exit import ExitStatus
from qwend.config.model import HealthConfig, LaneConfig, RestartConfig, StopConfig
from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.polling import until
from tests.support.simlane import sim_command, sim_executable

pytestmark = pytest.mark.slow

QWENCTL = str(Path(sys.executable).with_name("qwenctl"))
MODEL = "Qwen3.5-9B"
T = TypeVar("T")


def sim_lane(
    name: str,
    role: str,
    variant: str,
    npu: int,
    port: int,
    *,
    standby: bool = False,
    extra: Sequence[str] = (),
) -> LaneConfig:
    command = sim_command(
        port,
        model=MODEL,
        variant=variant,
        lane_name=name,
        startup_delay=1.0,
        time_scale=20.0,
        extra=extra,
    )
    command[command.index(str(port))] = "{port}"
    return LaneConfig(
        name=name,
        role=role,
        variant=variant,
        npus=(npu,),
        port=port,
        model=MODEL,
        command=tuple(command),
        standby=standby,
        health=HealthConfig(startup_timeout_s=30, interval_s=0.5, timeout_s=2),
        stop=StopConfig(timeout_s=5),
        restart=RestartConfig(backoff_min_s=0.5, backoff_max_s=2, crash_loop_limit=3),
    )


def demo_lanes(*, crashing_candidate: bool = False) -> list[LaneConfig]:
    stable_port = free_port()
    return [
        sim_lane("mm", "multimodal", "baseline", 7, free_port()),
        sim_lane("stable", "stable", "baseline", 4, stable_port),
        sim_lane("throughput", "throughput", "v3", 3, free_port()),
        sim_lane(
            "recurrent_v2",
            "stable",
            "recurrent_v2",
            4,
            stable_port,
            standby=True,
            extra=["--fail-startup", "--exit-code", "3"] if crashing_candidate else [],
        ),
        sim_lane("chunk_v2", "throughput", "chunk_v2", 5, free_port(), standby=True),
    ]


def monitor_table() -> dict[str, object]:
    return {
        "enabled": True,
        "npu_smi": f"{sim_executable()} npu-smi",
        "interval_s": 0.5,
        "timeout_s": 5,
        "release_wait_s": 10,
    }


@dataclass
class Load:
    """A constant stream of chat completions through the router."""

    base_url: str
    workers: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    lanes: list[str] = field(default_factory=list)
    """X-Qwend-Lane of every successful long-text request, in order."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, n: int) -> None:
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key="x", max_retries=0)
        try:
            i = 0
            while not self.stop.is_set():
                i += 1
                long = (i + n) % 2 == 0
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model=MODEL,
                        messages=[{"role": "user", "content": f"worker {n} request {i}"}],
                        max_tokens=40 if long else 8,
                        timeout=60,
                    )
                    raw.parse()
                except openai.OpenAIError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.ok += 1
                if long:
                    self.lanes.append(raw.headers.get("x-qwend-lane", "?"))
        finally:
            await client.close()

    async def run_during(self, coro: asyncio.Future[T], *, served_by: str | None = None) -> T:
        """Load the router while ``coro`` runs, then until a few more long-text answers came.

        With ``served_by``, also until that lane answered one: which lane the policy picks
        for the first answers after a switch depends on timing, not on the promotion.
        """
        tasks = [asyncio.create_task(self.worker(n)) for n in range(self.workers)]
        try:
            result = await coro
            answered = len(self.lanes)

            def settled() -> bool:
                after = self.lanes[answered:]
                return len(after) >= 4 and (served_by is None or served_by in after)

            await until(settled, 60, f"answers after the switch (served by {served_by})")
            return result
        finally:
            self.stop.set()
            await asyncio.gather(*tasks)


async def qwenctl(socket: Path, *argv: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        QWENCTL,
        "--socket",
        str(socket),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def status_json(socket: Path) -> Any:
    code, out, err = await qwenctl(socket, "status", "--json")
    assert code == ExitStatus.OK, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def router_url(config_path: Path) -> str:
    listen = tomllib.loads(config_path.read_text())["router"]["listen"]
    return f"http://{listen}/v1"


BASE_READY = {"mm": "ready", "stable": "ready", "throughput": "ready"}


async def test_in_place_promotion_under_load_survives_restart(
    tmp_path: Path, sim_state_dir: Path
) -> None:
    config = write_config(tmp_path / "etc", demo_lanes(), monitor=monitor_table())
    env = {"QWEND_SIM_STATE_DIR": str(sim_state_dir)}
    async with run_daemon(config, env=env) as daemon:
        await daemon.wait_lanes(BASE_READY)
        load = Load(router_url(config))
        promote = asyncio.ensure_future(
            qwenctl(daemon.control_socket, "promote", "lane", "recurrent_v2", "--wait")
        )
        code, out, err = await load.run_during(promote, served_by="recurrent_v2")
        assert code == ExitStatus.OK, out + err
        assert "promoted: recurrent_v2 now serves stable" in out
        for step in ("draining", "stopped", "waiting_npus", "ready", "switched"):
            assert step in out
        assert load.failures == [], load.failures[:5]
        assert load.ok > 20
        after = load.lanes[-4:]
        assert "recurrent_v2" in load.lanes and "stable" not in after, Counter(load.lanes)
        status = await status_json(daemon.control_socket)
        assert status["active"] == {
            "multimodal": "mm",
            "stable": "recurrent_v2",
            "throughput": "throughput",
        }
        lanes = {lane["name"]: lane for lane in status["lanes"]}
        assert lanes["stable"]["state"] == "stopped"
        assert lanes["recurrent_v2"]["state"] == "ready"
        history = status["last_promotions"]
        assert isinstance(history, list) and history[-1]["outcome"] == "promoted"
        assert history[-1]["requested_by"]["pid"] > 0
    assert (tmp_path / "etc" / "state" / "state.toml").exists()
    async with run_daemon(config, env=env) as daemon:
        await daemon.wait_lanes({"recurrent_v2": "ready", "throughput": "ready"})
        status = await status_json(daemon.control_socket)
        assert status["active"]["stable"] == "recurrent_v2"
        lanes = {lane["name"]: lane for lane in status["lanes"]}
        assert lanes["stable"]["state"] == "stopped"
        code, out, err = await qwenctl(
            daemon.control_socket, "rollback", "role", "stable", "--wait"
        )
        assert code == ExitStatus.OK, out + err
        status = await status_json(daemon.control_socket)
        assert status["active"]["stable"] == "stable"


async def test_blue_green_promotion_under_load_stops_old_lane(
    tmp_path: Path, sim_state_dir: Path
) -> None:
    config = write_config(tmp_path / "etc", demo_lanes(), monitor=monitor_table())
    env = {"QWEND_SIM_STATE_DIR": str(sim_state_dir)}
    async with run_daemon(config, env=env) as daemon:
        await daemon.wait_lanes(BASE_READY)
        load = Load(router_url(config))
        promote = asyncio.ensure_future(
            qwenctl(daemon.control_socket, "promote", "lane", "chunk_v2", "--wait", "--json")
        )
        code, out, err = await load.run_during(promote)
        assert code == ExitStatus.OK, out + err
        events = [json.loads(line) for line in out.splitlines()]
        assert events[0]["data"]["mode"] == "blue_green"
        assert events[-1]["data"]["outcome"] == "promoted"
        steps = [e["data"]["step"] for e in events if e["kind"] == "promotion"]
        assert steps.index("switched") < steps.index("draining") < steps.index("stopped")
        assert load.failures == [], load.failures[:5]
        infos = await daemon.wait_lanes({"chunk_v2": "ready", "throughput": "stopped"})
        assert infos["chunk_v2"].active and not infos["throughput"].active
        await assert_npus_show_lanes(daemon.control_socket, {"mm": 7, "stable": 4, "chunk_v2": 5})


async def assert_npus_show_lanes(socket: Path, expected: dict[str, int]) -> None:
    """``qwenctl npus`` (human and JSON) attributes the sim lanes' processes to their lanes."""
    async with asyncio.timeout(30):
        while True:
            code, out, err = await qwenctl(socket, "npus")
            assert code == ExitStatus.OK, err
            rows = [line.split() for line in out.splitlines()]
            if all(
                any(row[:1] == [str(npu)] and name in row[-1] for row in rows)
                for name, npu in expected.items()
            ):
                break
            await asyncio.sleep(0.5)
    code, out, err = await qwenctl(socket, "npus", "--json")
    assert code == ExitStatus.OK, err
    data = json.loads(out)
    assert data["enabled"] is True
    text = json.dumps(data["view"])
    for name in expected:
        assert name in text


async def test_crashing_candidate_is_rolled_back(tmp_path: Path, sim_state_dir: Path) -> None:
    config = write_config(
        tmp_path / "etc", demo_lanes(crashing_candidate=True), monitor=monitor_table()
    )
    env = {"QWEND_SIM_STATE_DIR": str(sim_state_dir)}
    async with run_daemon(config, env=env) as daemon:
        await daemon.wait_lanes(BASE_READY)
        load = Load(router_url(config), workers=2)
        promote = asyncio.ensure_future(
            qwenctl(daemon.control_socket, "promote", "lane", "recurrent_v2", "--wait")
        )
        code, out, err = await load.run_during(promote)
        assert code == ExitStatus.ROLLED_BACK, out + err
        assert "rolled back: recurrent_v2 failed" in out
        assert load.failures == [], load.failures[:5]
        assert load.lanes[-2:] != [] and "recurrent_v2" not in load.lanes
        infos = await daemon.wait_lanes({"stable": "ready"})
        assert infos["stable"].active
        assert infos["recurrent_v2"].state in ("stopped", "failed")
        status = await status_json(daemon.control_socket)
        assert status["active"]["stable"] == "stable"
        last = status["last_promotions"][-1]
        assert last["outcome"] == "rolled_back" and last["reason"]
