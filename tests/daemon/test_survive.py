"""``[daemon] lanes_survive_restart``: lanes outlive a killed daemon and are re-adopted.

Real daemons and real lane processes: the first daemon is SIGKILLed, the lane keeps
serving, the second daemon takes it back with the same PID and routes to it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import aiohttp
import tomli_w

from qwend.config.model import LaneConfig
from qwend.supervisor.adoption import LaneRecord, dumps_records, lane_digest
from qwend.supervisor.detached import proc_facts
from tests.support.daemonproc import DaemonProc, free_port, run_daemon, write_config
from tests.support.lanescripts.factory import FAST_HEALTH, get_json, make_lane, pid_alive
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


async def ready_pid(daemon: DaemonProc, lane: str = "a") -> int:
    """The PID of ``lane`` once the daemon reports it ready."""
    pid = (await daemon.wait_lanes({lane: "ready"}))[lane].pid
    assert pid is not None
    return pid


async def kill_daemon(daemon: DaemonProc) -> None:
    """SIGKILL the daemon, as a crash or a watchdog would, and wait for it to be gone."""
    daemon.send(signal.SIGKILL)
    await daemon.wait_exit(5)


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
        pid = await ready_pid(first)
        env = await get_json(f"{lane.base_url}/env")
        assert isinstance(env, dict)
        grandchild = env["child_pid"]
        await kill_daemon(first)
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
        pid = await ready_pid(first)
        await kill_daemon(first)
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
        pid = await ready_pid(first)
        await kill_daemon(first)
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


async def test_a_recycled_pid_in_the_records_is_never_signalled(tmp_path: Path) -> None:
    lane = make_lane("a")
    cfg = configure(tmp_path, [lane], free_port(), survive=True, runtime=None)
    # A process that is not the lane, under a recorded PID with another start time:
    # what a PID recycled while qwend was down looks like.
    bystander = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(120)", start_new_session=True
    )
    try:
        facts = proc_facts(bystander.pid)
        assert facts.start_ticks is not None
        record = LaneRecord("a", bystander.pid, facts.start_ticks + 1, lane.port, lane_digest(lane))
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "lanes.toml").write_text(dumps_records([record]))
        async with run_daemon(cfg) as d:
            infos = await d.wait_lanes({"a": "ready"})
            assert infos["a"].pid != bystander.pid
            assert bystander.returncode is None and pid_alive(bystander.pid)
    finally:
        bystander.kill()
        await bystander.wait()


async def test_an_adopted_lane_that_does_not_answer_is_replaced(tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    lane = make_lane(
        "a",
        extra=("--hang-health-file", str(hang)),
        health=replace(FAST_HEALTH, startup_timeout_s=2.0),
    )
    port = free_port()
    cfg = configure(tmp_path, [lane], port, survive=True, runtime=None)
    async with run_daemon(cfg) as first:
        pid = await ready_pid(first)
        await kill_daemon(first)
        hang.touch()  # the lane still runs but no longer answers /health
        async with run_daemon(cfg) as second:
            await until(lambda: not pid_alive(pid), 30, "the mute adopted lane to be stopped")
            hang.unlink()
            infos = await second.wait_lanes({"a": "ready"})
            assert infos["a"].pid not in (None, pid)
            assert await chat(port, lane.model) == 200
