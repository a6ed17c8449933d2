"""Each fault-injection flag, the startup delay and SIGTERM, on real sim subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from qwend.sim.cli import HANG_FILE
from tests.support.polling import SLACK_S
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import (
    SimLaneFactory,
    SimLaneProcess,
    metric_value,
    run_npu_smi,
    sim_executable,
    wait_for,
)


def ask(lane: SimLaneProcess, max_tokens: int = 3) -> str:
    client = openai.OpenAI(base_url=lane.openai_url, api_key="x", max_retries=0, timeout=10)
    reply = client.completions.create(model=MODEL, prompt="fault", max_tokens=max_tokens)
    return reply.choices[0].text


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_port_is_bound_only_after_the_startup_delay(
    sim_lane: SimLaneFactory, sim_state_dir: Path
) -> None:
    spawned = time.monotonic()
    lane = sim_lane(startup_delay=1.5, time_scale=1.0, wait=False)
    record = sim_state_dir / f"lane-{lane.pid}.json"
    wait_for(record.exists, what="state file written while loading")
    assert not port_open(lane.port)
    loading_hbm = json.loads(record.read_text())["hbm_mb"]
    lane.wait_serving()
    # Measured from the spawn, not from a moment this test may reach late on a busy machine.
    assert time.monotonic() - spawned >= 1.5
    wait_for(lambda: json.loads(record.read_text())["hbm_mb"] > loading_hbm, what="HBM filled")


def test_sigterm_exits_zero_and_removes_the_state_file(
    sim_lane: SimLaneFactory, sim_state_dir: Path
) -> None:
    lane = sim_lane()
    record = sim_state_dir / f"lane-{lane.pid}.json"
    assert record.exists()
    lane.proc.send_signal(signal.SIGTERM)
    assert lane.wait_exit() == 0
    assert not record.exists()
    assert '"stopped"' in lane.log_text()


def test_sigterm_during_load_exits_zero(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(startup_delay=30, time_scale=1.0, wait=False)
    wait_for(lambda: "loading model" in lane.log_text(), what="load started")
    lane.proc.send_signal(signal.SIGTERM)
    assert lane.wait_exit() == 0


def test_fail_startup_exits_with_code_and_never_binds(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(extra=["--fail-startup", "--exit-code", "3"], wait=False)
    assert lane.wait_exit() == 3
    assert not port_open(lane.port)
    assert "--fail-startup" in lane.log_text()


def test_exit_after_requests(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(extra=["--exit-after-requests", "2", "--exit-code", "7"])
    assert ask(lane)
    assert ask(lane)
    assert lane.wait_exit() == 7


def test_exit_after_seconds(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(extra=["--exit-after-seconds", "1.0"])
    assert ask(lane)
    assert lane.wait_exit() == 1
    assert "--exit-after-seconds" in lane.log_text()


async def test_hang_health_hangs_while_generation_works(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(extra=["--hang-health"])
    timeout = aiohttp.ClientTimeout(total=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            async with session.get(f"{lane.base_url}/health"):
                pass
    assert ask(lane)


async def test_error_rate_fails_that_fraction_with_the_status(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(extra=["--error-rate", "0.5", "--error-status", "503"])
    body = {"model": MODEL, "prompt": "x", "max_tokens": 2}
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(6):
            async with session.post(f"{lane.openai_url}/completions", json=body) as resp:
                statuses.append(resp.status)
                reply = await resp.json()
                if resp.status == 503:
                    assert reply["error"]["type"] == "service_unavailable"
    assert statuses.count(503) == 3
    assert statuses.count(200) == 3


async def test_stall_after_tokens_stops_the_stream(sim_lane: SimLaneFactory) -> None:
    lane = sim_lane(extra=["--stall-after-tokens", "3"], time_scale=50)
    body = {"model": MODEL, "prompt": "x", "max_tokens": 50, "stream": True}
    url = f"{lane.openai_url}/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        events = [await resp.content.readuntil(b"\n\n") for _ in range(3)]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.6):
                await resp.content.readuntil(b"\n\n")
        # Still holding its slot, like a hung sequence would.
        assert metric_value(lane.base_url, "vllm:num_requests_running") == 1.0
    assert all(e.startswith(b"data: {") for e in events)
    wait_for(
        lambda: metric_value(lane.base_url, "qwend_sim_requests_aborted_total") == 1.0,
        what="the stalled stream counted as aborted after the client left",
    )
    assert metric_value(lane.base_url, "vllm:num_requests_running") == 0.0


def test_leaked_npu_memory_shows_after_exit(sim_lane: SimLaneFactory, sim_state_dir: Path) -> None:
    # The window runs from the lane's exit, and `qwend-sim npu-smi` is a new Python process
    # that needs more than a second to start on a loaded machine. So one lane leaks for
    # longer than any start-up (its record must show), and another for a short window
    # (its record must go away); each check holds however slow the machine is.
    held = sim_lane(npus="5", extra=["--leak-npu-memory-s", "600"])
    brief = sim_lane(npus="6", extra=["--leak-npu-memory-s", "0.5"])
    for lane in (held, brief):
        lane.proc.send_signal(signal.SIGTERM)
        assert lane.wait_exit() == 0
    after = run_npu_smi(sim_state_dir, "info")
    assert after.returncode == 0
    assert f"| 5       0            | {held.pid:<14}|" in after.stdout
    wait_for(
        lambda: str(brief.pid) not in run_npu_smi(sim_state_dir, "info").stdout,
        timeout=30,
        what="the leak window to end",
    )
    assert f"| 5       0            | {held.pid:<14}|" in run_npu_smi(sim_state_dir, "info").stdout


def test_npu_smi_hangs_while_the_hang_file_exists(sim_state_dir: Path) -> None:
    sim_state_dir.mkdir(parents=True, exist_ok=True)
    hang = sim_state_dir / HANG_FILE
    hang.touch()
    env = dict(os.environ, QWEND_SIM_STATE_DIR=str(sim_state_dir))
    proc = subprocess.Popen(
        [sim_executable(), "npu-smi", "info"], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)  # a hung npu-smi: no answer while the file is there
        hang.unlink()
        out, _ = proc.communicate(timeout=SLACK_S)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0
    assert "npu-smi" in out
