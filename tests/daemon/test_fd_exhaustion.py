"""Idle connections cannot take the descriptors the daemon needs (issue 13, finding 4).

On the demo 1,100 idle half-open connections to a public port exhausted the daemon's
descriptors: health probes failed with EMFILE, every lane went ``stopped`` and none came
back. Scaled down here: the daemon runs with RLIMIT_NOFILE 512 (soft and hard), and the
test holds 700 idle connections (loopback only) to its public port.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import tomli_w

from qwend.daemon.fdplan import lane_reserve
from tests.support.daemonproc import DaemonProc, free_port, run_daemon, write_config
from tests.support.lanescripts.factory import FAST_HEALTH, make_lane
from tests.support.polling import SLACK_S

pytestmark = pytest.mark.slow

NOFILE = 512
CONNECTIONS = 700
HOLD_S = 12 * FAST_HEALTH.interval_s * FAST_HEALTH.failure_threshold
"""Long enough for many probe rounds: on the old daemon lanes failed within two."""


@contextlib.contextmanager
def own_nofile(needed: int) -> Iterator[None]:
    """Room for the test's own client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def hold(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte (or as many as the kernel allows)."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        held.append(sock)
    return held


async def chat(url: str) -> int:
    doc = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url + "/v1/chat/completions", json=doc) as resp,
    ):
        return resp.status


async def lane_states(d: DaemonProc) -> dict[str, tuple[str, int | None, int]]:
    """Name -> (state, pid, restarts), from the control socket (``qwenctl status``)."""
    async with asyncio.timeout(5):  # the old daemon could not even accept on it
        infos = await d.lanes()
    return {n: (i.state, i.pid, i.restarts) for n, i in infos.items()}


async def test_idle_connections_leave_lanes_probes_and_control_working(tmp_path: Path) -> None:
    lanes = [make_lane(name, npus=(i,), model="m") for i, name in enumerate(("a", "b", "c"))]
    cfg = write_config(tmp_path, lanes)
    public = free_port()
    doc = tomllib.loads(cfg.read_text())
    doc["public"] = {"endpoints": [{"listen": f"127.0.0.1:{public}", "target": "router"}]}
    doc["connections"] = {"header_timeout_s": 600.0, "idle_timeout_s": 600.0}  # the cap alone
    cfg.write_bytes(tomli_w.dumps(doc).encode())
    url = f"http://127.0.0.1:{public}"
    with own_nofile(CONNECTIONS + 256):
        async with run_daemon(cfg, nofile=NOFILE) as d:
            ready = await d.wait_lanes(dict.fromkeys(("a", "b", "c"), "ready"))
            before = {n: (i.state, i.pid, i.restarts) for n, i in ready.items()}
            assert await chat(url) == 200
            held = hold(public, CONNECTIONS)
            try:
                loop = asyncio.get_running_loop()
                until = loop.time() + HOLD_S
                while loop.time() < until:  # watched over many probe rounds, not a wait
                    assert await lane_states(d) == before
                    await asyncio.sleep(FAST_HEALTH.interval_s)
            finally:
                for sock in held:
                    sock.close()
            assert await lane_states(d) == before
            async with asyncio.timeout(SLACK_S):
                assert await chat(url) == 200  # served again
            log = d.stderr()
    assert "Too many open files" not in log
    assert "connection cap reached" in log
    cap = (NOFILE - lane_reserve(3, 8)) // 2
    assert f'"max_per_listener": {cap}' in log
