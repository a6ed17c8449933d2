"""``[daemon] lanes_survive_restart``: lanes outlive a killed daemon and are re-adopted.

Real daemons and real lane processes: the first daemon is SIGKILLed, the lane keeps
serving, the second daemon takes it back with the same PID and routes to it.
"""

from __future__ import annotations

import asyncio
import signal
import tomllib
from dataclasses import replace
from pathlib import Path

import aiohttp
import tomli_w

from qwend.config.model import LaneConfig
from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.lanescripts.factory import get_json, make_lane, pid_alive
from tests.support.polling import DEADLINE_S, until


def configure(
    base: Path, lanes: list[LaneConfig], router_port: int, *, survive: bool, runtime: Path | None
) -> Path:
    """write_config plus ``[daemon] lanes_survive_restart``."""
    path = write_config(base, lanes, router_port=router_port, runtime=runtime)
    main = tomllib.loads(path.read_text())
    main["daemon"]["lanes_survive_restart"] = survive
    path.write_bytes(tomli_w.dumps(main).encode())
    return path


async def chat(router_port: int, model: str) -> int:
    """One chat completion through the router; its HTTP status."""
    body = {"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(f"http://127.0.0.1:{router_port}/v1/chat/completions", json=body) as resp,
    ):
        await resp.read()
        return resp.status


async def test_a_lane_outlives_a_killed_daemon_and_is_adopted(tmp_path: Path) -> None:
    lane = make_lane("a", extra=("--spawn-child",))
    port = free_port()
    cfg = configure(tmp_path, [lane], port, survive=True, runtime=None)
    async with run_daemon(cfg) as first:
        pid = (await first.wait_lanes({"a": "ready"}))["a"].pid
        assert pid is not None
        env = await get_json(f"{lane.base_url}/env")
        assert isinstance(env, dict)
        grandchild = env["child_pid"]
        first.send(signal.SIGKILL)
        await first.wait_exit(5)
        # The lane (and its group) still serve with no daemon at all.
        assert await get_json(f"{lane.base_url}/env") == env
        async with run_daemon(cfg) as second:
            infos = await second.wait_lanes({"a": "ready"})
            assert infos["a"].pid == pid
            assert await chat(port, lane.model) == 200
            # The lane writes its log itself; the new daemon shows old and new output.
            async with second.client() as client:
                lines = (await client.logs("a", 500)).lines
                assert any(f"lane starting pid={pid}" in line for line in lines)
                for _ in range(100):
                    lines = (await client.logs("a", 500)).lines
                    if any("POST /v1/chat/completions" in line for line in lines):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"no new output in the adopted lane's log: {lines}")
        # An ordered shutdown still stops every lane, adopted ones included.
        await until(lambda: not pid_alive(pid) and not pid_alive(grandchild), DEADLINE_S)
        assert not (tmp_path / "state" / "lanes.toml").read_text().count("pid")


async def test_a_lane_changed_while_the_daemon_was_down_is_replaced(tmp_path: Path) -> None:
    lane = make_lane("a")
    port = free_port()
    cfg = configure(tmp_path, [lane], port, survive=True, runtime=None)
    async with run_daemon(cfg) as first:
        pid = (await first.wait_lanes({"a": "ready"}))["a"].pid
        assert pid is not None
        first.send(signal.SIGKILL)
        await first.wait_exit(5)
        changed = replace(lane, env={"CHANGED": "yes"})
        configure(tmp_path, [changed], port, survive=True, runtime=first.control_socket.parent)
        async with run_daemon(cfg) as second:
            infos = await second.wait_lanes({"a": "ready"})
            assert infos["a"].pid not in (None, pid)
            assert not pid_alive(pid)
            env = await get_json(f"{lane.base_url}/env")
            assert isinstance(env, dict) and env["env"]["CHANGED"] == "yes"


async def test_turning_survival_off_stops_the_lanes_left_behind(tmp_path: Path) -> None:
    lane = make_lane("a")
    port = free_port()
    cfg = configure(tmp_path, [lane], port, survive=True, runtime=None)
    async with run_daemon(cfg) as first:
        pid = (await first.wait_lanes({"a": "ready"}))["a"].pid
        assert pid is not None
        first.send(signal.SIGKILL)
        await first.wait_exit(5)
        configure(tmp_path, [lane], port, survive=False, runtime=first.control_socket.parent)
        async with run_daemon(cfg) as second:
            infos = await second.wait_lanes({"a": "ready"})
            assert infos["a"].pid not in (None, pid)
            assert not pid_alive(pid)
            # Off again: the new lane dies with its daemon, as without the setting.
            second.send(signal.SIGKILL)
            await second.wait_exit(5)
            new = infos["a"].pid
            assert new is not None
            await until(lambda: not pid_alive(new), DEADLINE_S, "the lane to die with qwend")
