"""Remote lanes on a real daemon: a sim lane the test starts is reached by url, never spawned.

The sim lane requires an API key (like ``vllm serve --api-key``), so a lane that becomes
ready and answers through the router proves qwend sends the key; its health state follows
the sim being stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import tomli_w

from qwend.cli.exit import ExitStatus as CliExit
from tests.support.daemonproc import DaemonProc, run_daemon, write_config
from tests.support.simlane import DEFAULT_MODEL, SimLaneFactory

QWENCTL = str(Path(sys.executable).with_name("qwenctl"))
KEY = "sk-remote-lane-secret-7f3a"


def remote_lane_file(url: str, key_file: Path, **extra: Any) -> bytes:
    table: dict[str, Any] = {
        "name": "far",
        "role": "stable",
        "model": "Qwen3.5-9B",
        "served_model": DEFAULT_MODEL,
        "url": url,
        "api_key_file": str(key_file),
        "connect_timeout_s": 1.0,
        "health": {"interval_s": 0.2, "timeout_s": 1.0, "failure_threshold": 2},
        "restart": {"backoff_min_s": 0.1, "backoff_max_s": 0.5},
    }
    table.update(extra)
    return tomli_w.dumps({"lane": table}).encode()


def key_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "far.key"
    path.write_text(f"# the key of the far host\n{KEY}\n")
    path.chmod(mode)
    return path


async def chat(router: str) -> tuple[int, str]:
    """Status and answering lane of one chat request through the router."""
    doc = {"model": "Qwen3.5-9B", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(router + "/v1/chat/completions", json=doc) as resp,
    ):
        await resp.read()
        return resp.status, resp.headers.get("X-Qwend-Lane", "")


async def qwenctl(daemon: DaemonProc, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        QWENCTL,
        "--socket",
        str(daemon.control_socket),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def spawned(daemon: DaemonProc) -> list[list[str]]:
    """The command lines of the daemon's live descendants but its orphan guard (a helper
    that is always there to kill lane groups if the daemon dies)."""
    found = []
    for pid in daemon.descendants():
        with contextlib.suppress(psutil.NoSuchProcess):
            cmdline = psutil.Process(pid).cmdline()
            if "os.killpg" not in " ".join(cmdline):
                found.append(cmdline)
    return found


def router_url(cfg: Path) -> str:

    return "http://" + str(tomllib.loads(cfg.read_text())["router"]["listen"])


@pytest.mark.slow
async def test_a_remote_lane_is_routed_health_checked_and_never_spawned(
    sim_lane: SimLaneFactory, tmp_path: Path
) -> None:
    sim = sim_lane(variant="v3", time_scale=50, extra=["--api-key", KEY])
    cfg = write_config(tmp_path / "etc", [])
    (cfg.parent / "lanes.d" / "far.toml").write_bytes(
        remote_lane_file(sim.base_url, key_file(tmp_path))
    )
    router = router_url(cfg)
    async with run_daemon(cfg) as daemon:
        infos = await daemon.wait_lanes({"far": "ready"}, timeout=30)
        far = infos["far"]
        assert far.pid is None and far.url == sim.base_url and far.npus == ()
        assert spawned(daemon) == [], "qwend spawned something for a remote lane"
        assert await chat(router) == (200, "far")

        code, out, _ = await qwenctl(daemon, "lanes")
        assert code == 0 and f"remote {sim.base_url}" in out
        async with aiohttp.ClientSession() as session, session.get(router + "/metrics") as resp:
            metrics = await resp.text()
        assert 'lane="far"' in metrics

        # Its host stops it: out of rotation after failure_threshold probes, no request
        # reaches it, and it is not marked failed (it may come back).
        sim.stop()
        infos = await daemon.wait_lanes({"far": "starting"}, timeout=20)
        assert not infos["far"].accepting
        status, _ = await chat(router)
        assert status == 503

        # The host starts it again on the same port: ready and routed again.
        again = sim_lane(variant="v3", time_scale=50, port=sim.port, extra=["--api-key", KEY])
        await daemon.wait_lanes({"far": "ready"}, timeout=30)
        assert await chat(router) == (200, "far")

        # Operator actions: start/stop/restart are a conflict; drain and resume work.
        for argv in (("stop", "--force"), ("restart", "--force"), ("start",)):
            action = argv[0]
            code, _, err = await qwenctl(daemon, action, "lane", "far", *argv[1:])
            assert code == CliExit.CONFLICT, (action, code, err)
            assert "remote lane" in err and "drain" in err
        code, _, err = await qwenctl(daemon, "drain", "lane", "far")
        assert code == 0, err
        await daemon.wait_lanes({"far": "draining"}, timeout=10)
        code, _, err = await qwenctl(daemon, "start", "lane", "far")
        assert code == 0, err
        await daemon.wait_lanes({"far": "ready"}, timeout=10)
        assert spawned(daemon) == []
        assert again.proc.poll() is None  # qwend never stopped the remote lane's process
    assert KEY not in daemon.stderr(), "the upstream key was logged"


async def test_a_world_readable_key_file_keeps_the_lane_out_with_a_reason(
    sim_lane: SimLaneFactory, tmp_path: Path
) -> None:
    sim = sim_lane(variant="v3", time_scale=50, extra=["--api-key", KEY])
    cfg = write_config(tmp_path / "etc", [])
    (cfg.parent / "lanes.d" / "far.toml").write_bytes(
        remote_lane_file(sim.base_url, key_file(tmp_path, 0o644))
    )
    async with run_daemon(cfg) as daemon:

        async def reason() -> str:
            return (await daemon.lanes())["far"].reason or ""

        deadline = asyncio.get_running_loop().time() + 20
        while "readable by every user" not in await reason():
            assert asyncio.get_running_loop().time() < deadline, await reason()
            await asyncio.sleep(0.1)
        assert "chmod" in await reason()
