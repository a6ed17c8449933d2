"""The real ``qwend`` daemon as a subprocess: readiness, signals, reload, orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from qwend.api.client import ControlClient
from qwend.config.load import load_config
from qwend.daemon.demo import demo_environment, demo_path
from qwend.daemon.exit import ExitStatus
from tests.support.daemonproc import run_daemon, write_config
from tests.support.lanescripts.factory import get_json, make_lane, pid_alive
from tests.support.polling import SLACK_S, until

pytestmark = pytest.mark.slow


async def test_demo_lanes_reach_ready_with_their_devices(tmp_path: Path) -> None:
    demo = load_config(demo_path())
    ports = iter(socket.socket() for _ in demo.lanes)
    lanes = []
    for lane, sock in zip(demo.lanes, ports, strict=True):
        with sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        lanes.append(replace(lane, port=port, health=replace(lane.health, interval_s=1.0)))
    cfg = write_config(tmp_path / "etc", lanes)
    env = demo_environment(tmp_path / "run")
    async with run_daemon(cfg, env=env) as d:
        ready_msg = d.notifications[d.notifications.index("READY=1") + 1]
        assert ready_msg.startswith("STATUS=0/3 lanes ready")  # READY before lanes are up
        await d.wait_notify(lambda m: m == "STATUS=3/3 lanes ready", timeout=60)
        infos = await d.lanes()
        for lane in lanes:
            info = infos[lane.name]
            if lane.standby:
                assert info.state == "stopped"
                continue
            assert info.state == "ready"
            models = await get_json(f"{lane.base_url}/v1/models")
            assert isinstance(models, dict)
            meta = models["data"][0]["metadata"]
            assert meta["ascend_rt_visible_devices"] == lane.visible_devices
            assert meta["lane"] == lane.name


async def test_sigterm_exits_0_and_leaves_nothing(tmp_path: Path) -> None:
    a = make_lane("a", npus=(1, 0), extra=["--spawn-child"])
    b = make_lane("b", npus=(2,), extra=["--ignore-term"], stop_timeout=2.0)
    cfg = write_config(tmp_path, [a, b], drain_timeout_s=2.0)
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=2/2 lanes ready")
        infos = await d.lanes()
        env = await get_json(f"{a.base_url}/env")
        assert isinstance(env, dict)
        assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1"
        grandchild = env["child_pid"]
        d.known_pids.add(grandchild)
        assert infos["a"].pid == env["pid"]
        started = time.monotonic()
        d.send(signal.SIGTERM)
        status = await d.wait_exit(timeout=2.0 + 2.0 + 10.0)
        elapsed = time.monotonic() - started
        assert status == ExitStatus.OK
        assert "STOPPING=1" in d.notifications
        assert elapsed < 2.0 + 2.0 + 10.0
        assert d.leftovers() == []
        assert not pid_alive(grandchild)
        assert not d.control_socket.exists()


async def test_sigkill_of_qwend_takes_every_lane_down(tmp_path: Path) -> None:
    a = make_lane("a", npus=(0,), extra=["--spawn-child"])
    b = make_lane("b", npus=(1,), extra=["--ignore-term"])
    cfg = write_config(tmp_path, [a, b])
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=2/2 lanes ready")
        await d.lanes()
        env = await get_json(f"{a.base_url}/env")
        assert isinstance(env, dict)
        d.known_pids.add(env["child_pid"])
        pids = set(d.descendants())
        assert len(pids) >= 4  # two lanes, a grandchild, the orphan guard
        d.send(signal.SIGKILL)
        await d.wait_exit(5)
        # At once on a quiet machine (PDEATHSIG and the orphan guard); a loaded one gets slack.
        await until(
            lambda: not d.leftovers(), SLACK_S, f"all of {sorted(pids)} to die", interval=0.02
        )


def guard_pids(daemon_pid: int) -> set[int]:
    """The orphan guard among the daemon's children (``python -I -S -c ...``)."""
    found = set()
    for child in psutil.Process(daemon_pid).children():
        try:
            if child.cmdline()[1:4] == ["-I", "-S", "-c"] and child.status() != "zombie":
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


async def test_a_dead_orphan_guard_is_restarted_with_every_lane_group(tmp_path: Path) -> None:
    a = make_lane("a", npus=(0,), extra=["--spawn-child"])
    cfg = write_config(tmp_path, [a])
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=1/1 lanes ready")
        await d.lanes()
        env = await get_json(f"{a.base_url}/env")
        assert isinstance(env, dict)
        d.known_pids.add(env["child_pid"])
        (guard,) = guard_pids(d.pid)
        os.kill(guard, signal.SIGKILL)
        await until(lambda: guard_pids(d.pid) - {guard} != set(), SLACK_S, "a new orphan guard")
        pids = set(d.descendants())
        d.send(signal.SIGKILL)
        await d.wait_exit(5)
        # The lane's grandchild ignores SIGTERM and has no PDEATHSIG: only the guard kills it.
        await until(
            lambda: not d.leftovers(), SLACK_S, f"all of {sorted(pids)} to die", interval=0.02
        )


async def test_sighup_restarts_only_the_lane_whose_env_changed(tmp_path: Path) -> None:
    lanes = [make_lane(n, npus=(i,)) for i, n in enumerate("abc")]
    cfg = write_config(tmp_path, lanes)
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=3/3 lanes ready")
        before = {n: i.pid for n, i in (await d.lanes()).items()}
        lanes[1] = replace(lanes[1], env={"CHANGED": "yes"})
        write_config(tmp_path, lanes, runtime=d.control_socket.parent)
        mark = len(d.notifications)
        d.send(signal.SIGHUP)
        await d.wait_notify(lambda m: m == "RELOADING=1", after=mark)
        assert any(m.startswith("MONOTONIC_USEC=") for m in d.notifications[mark:])
        await d.wait_notify(lambda m: m == "READY=1", after=mark)
        infos = await d.wait_lanes({"a": "ready", "b": "ready", "c": "ready"})
        assert infos["a"].pid == before["a"]
        assert infos["c"].pid == before["c"]
        assert infos["b"].pid != before["b"]
        env = await get_json(f"{lanes[1].base_url}/env")
        assert isinstance(env, dict) and env["env"]["CHANGED"] == "yes"


async def test_sighup_with_a_broken_config_keeps_every_lane(tmp_path: Path) -> None:
    lanes = [make_lane("a", npus=(0,)), make_lane("b", npus=(1,))]
    cfg = write_config(tmp_path, lanes)
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=2/2 lanes ready")
        before = {n: i.pid for n, i in (await d.lanes()).items()}
        broken = tmp_path / "lanes.d" / "b.toml"
        broken.write_text(broken.read_text().replace("npus = [", "npus = ['x', "))
        mark = len(d.notifications)
        d.send(signal.SIGHUP)
        await d.wait_notify(lambda m: "reload failed" in m, after=mark)
        infos = await d.lanes()
        assert {n: i.pid for n, i in infos.items()} == before
        assert {i.state for i in infos.values()} == {"ready"}
        async with d.client() as client:
            status = await client.status()
        errors = status.daemon.config_errors
        assert errors and any("b.toml" in e.file for e in errors)
        assert "configuration error" in d.stderr()


async def test_watchdog_is_pinged_from_the_loop(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [make_lane("a")])
    async with run_daemon(cfg, watchdog_usec=200_000) as d:
        mark = len(d.notifications)
        for _ in range(3):
            await d.wait_notify(lambda m: m == "WATCHDOG=1", after=mark, timeout=5)
            mark = len(d.notifications)


async def test_real_demo_mode_prints_addresses_and_serves(tmp_path: Path) -> None:
    for port in (18088, 9101, 9102, 9105, 9111):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"the demo's port {port} is in use")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qwend", "--demo", "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode()]
        while not lines[-1].startswith("export ") and len(lines) < 10:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
        assert "http://127.0.0.1:18088/v1" in lines[0]
        assert "http://127.0.0.1:9102/v1  -> role:multimodal" in "".join(lines)
        assert "qwend demo: console  http://127.0.0.1:9105/\n" in lines
        assert lines[-1].strip() == f"export QWEND_SOCKET={tmp_path}/qwend/control.sock"
        deadline = time.monotonic() + 60
        async with ControlClient(tmp_path / "qwend" / "control.sock") as client:
            while True:
                states = {i.name: i.state for i in (await client.lanes()).lanes}
                if [s for s in states.values() if s == "ready"] == ["ready"] * 3:
                    break
                assert time.monotonic() < deadline, states
                await asyncio.sleep(0.2)
        models = await get_json("http://127.0.0.1:9102/v1/models")  # a public endpoint
        assert isinstance(models, dict) and models["data"]
        console = await get_json("http://127.0.0.1:9105/api/targets")  # the web console
        assert isinstance(console, dict) and console["targets"][0]["id"] == "router"
        kids = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert not [k.pid for k in kids if pid_alive(k.pid)]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    import openai  # deferred: it takes most of a second, and every run collects this module

    lane = replace(
        make_lane("s", npus=(0,)),
        command=(
            "qwend-sim", "serve", "--host", "127.0.0.1", "--port", "{port}",
            "--served-model-name", "{model}", "--variant", "v3", "--startup-delay", "0",
        ),
    )  # fmt: skip
    cfg = write_config(tmp_path, [lane], drain_timeout_s=30.0)
    router_url = "http://" + tomllib.loads(cfg.read_text())["router"]["listen"] + "/v1"
    env = demo_environment(tmp_path / "run")
    async with run_daemon(cfg, env=env) as d:
        await d.wait_notify(lambda m: m == "STATUS=1/1 lanes ready")
        client = openai.AsyncOpenAI(base_url=router_url, api_key="x", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model=lane.model,
                messages=[{"role": "user", "content": "count slowly"}],
                max_tokens=48,
                stream=True,
            )
            chunks = 0
            finish = None
            async for chunk in stream:
                chunks += 1
                if chunks == 2:
                    d.send(signal.SIGTERM)  # mid-stream: the request must still complete
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
        finally:
            await client.close()
        assert finish is not None
        assert chunks > 10
        assert await d.wait_exit(30) == ExitStatus.OK
        assert d.leftovers() == []


async def test_lane_env_gets_ascend_defaults_of_the_detected_chip(tmp_path: Path) -> None:
    lane = make_lane("a", npus=(1, 0), env={"OMP_NUM_THREADS": "4"})
    monitor = {
        "enabled": True,
        "npu_smi": "qwend-sim npu-smi",
        "interval_s": 1,
        "timeout_s": 5,
        "release_wait_s": 1,
    }
    cfg = write_config(tmp_path, [lane], monitor=monitor)
    async with run_daemon(cfg, env=demo_environment(tmp_path / "run")) as d:
        await d.wait_notify(lambda m: m == "STATUS=1/1 lanes ready")
        info = await get_json(f"{lane.base_url}/env")
        assert isinstance(info, dict)
        env = info["env"]
        assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1"
        assert env["PYTORCH_NPU_ALLOC_CONF"] == "expandable_segments:True"  # 910A default
        assert env["HCCL_BUFFSIZE"] == "512"  # multi-NPU lane
        assert "HCCL_OP_EXPANSION_MODE" not in env  # not on 910A
        assert env["OMP_NUM_THREADS"] == "4"  # the lane's own env wins
        assert "NOTIFY_SOCKET" not in env
