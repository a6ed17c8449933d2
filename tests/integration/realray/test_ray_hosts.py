"""Real Ray (PyPI's ``ray``, CPU) supervised by real qwends on two "hosts".

Two network namespaces on a bridge, one qwend in each, peers of each other with a shared
token. Lane ``ray`` is a lane group of headless members: ``ray start --head --block`` on
node0 and ``ray start --block --address NODE0:PORT`` on node1, one CPU each. Lane
``engine`` on node0 has ``runs_on = "ray"``: ``ray_engine.py``, a Ray driver that places
one actor on each node (STRICT_SPREAD placement group) and answers chat completions with
every actor's reply, exiting when an actor's node dies, as vLLM's Ray executor does.

Asserted: the group becomes ready and then the engine, which qwend routes (an answer made
by actors on both hosts); SIGKILL of node1's ``ray start``: once qwend has reaped it, none
of its processes is left (its worker actor too, which Ray put in a process group of its
own), the engine is gone before the head member is stopped, the group restarts as a unit
(new PIDs on both hosts, engine started after both members) and the engine serves again
on the new cluster; stopping both qwends leaves no Ray process on either host: gcs_server,
raylet, dashboard, agents and the worker actors. Timings are printed (``pytest -s``).
Root only; ``make real-ray`` (CI) provisions Ray and runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from qwend.api.messages import LaneInfo
from tests.cluster.peerrig import add_cluster, token_file
from tests.integration.realray.rayenv import ENGINE, Found, ray_processes, ray_venv
from tests.support.daemonproc import DaemonProc, run_daemon, short_dir, write_config, write_lane
from tests.support.netns import Cluster, cluster_hosts, namespaces, require_netns

pytestmark = [pytest.mark.real_ray, pytest.mark.timeout(300)]

MEMBERS = ("node0", "node1")
GCS_PORT = 25379
ENGINE_PORT = 25380
PEER_PORT = 25711
ROUTER_PORT = 25389
MODEL = "ray-engine"
RESTART = {"backoff_min_s": 0.2, "backoff_max_s": 1.0}
RAY_STOP = {"mode": "main", "timeout_s": 15.0}
"""SIGTERM to ``ray start`` alone: it shuts its node's daemons down itself (a few seconds;
tens when every Ray process gets the signal at once), then qwend kills what is left."""
ENGINE_HEALTH = {"interval_s": 0.5, "timeout_s": 2.0, "failure_threshold": 2,
                 "startup_timeout_s": 90.0}  # fmt: skip
WAIT_S = 90.0
"""Bound of each wait below (Ray's processes start slowly on two shared cores)."""

ASK = r"""
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/v1/chat/completions", method="POST",
    data=json.dumps({"model": sys.argv[2], "max_tokens": 4,
                     "messages": [{"role": "user", "content": "where do you run?"}]}).encode(),
    headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        body = json.loads(response.read())
        print(json.dumps({"status": response.status, "lane": response.headers["X-Qwend-Lane"],
                          "content": body["choices"][0]["message"]["content"]}))
except urllib.error.HTTPError as exc:
    print(json.dumps({"status": exc.code, "lane": "", "content": exc.read().decode()[:300]}))
"""


def ask(net: Cluster) -> dict[str, Any]:
    """One chat completion through node0's router (from inside node0's namespace)."""
    done = subprocess.run(
        [*net.exec_in("node0"), sys.executable, "-c", ASK, f"http://127.0.0.1:{ROUTER_PORT}",
         MODEL],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def ray_command(venv: Path, net: Cluster, host: str, temp: Path) -> list[str]:
    ray = str(venv / "bin" / "ray")
    common = [
        "--block", "--node-ip-address", net.addr[host], "--num-cpus", "1",
        "--temp-dir", str(temp / host),
    ]  # fmt: skip
    if host == "node0":
        return [ray, "start", "--head", "--port", str(GCS_PORT), "--disable-usage-stats",
                *common]  # fmt: skip
    return [ray, "start", "--address", f"{net.addr['node0']}:{GCS_PORT}", *common]


def host_config(base: Path, net: Cluster, host: str, token: Path, venv: Path, temp: Path) -> Path:
    """qwend.toml of a host: its member of the Ray group, the engine on node0, the peer."""
    cfg = write_config(base / host, [], drain_timeout_s=1.0, router_port=ROUTER_PORT)
    other = next(m for m in MEMBERS if m != host)
    add_cluster(
        cfg,
        {"name": host, "listen": f"{net.addr[host]}:{PEER_PORT}", "token_file": str(token)},
        [{"name": other, "url": f"http://{net.addr[other]}:{PEER_PORT}", "timeout_s": 1.0}],
    )
    lanes = cfg.parent / "lanes.d"
    write_lane(
        lanes,
        "ray",
        {"role": "ray", "model": MODEL, "npus": [0], "command": ray_command(venv, net, host, temp),
         "restart": RESTART, "stop": RAY_STOP, "group": {"members": list(MEMBERS)}},
    )  # fmt: skip
    if host == "node0":
        engine = [
            str(venv / "bin" / "python"), str(ENGINE),
            "--address", f"{net.addr['node0']}:{GCS_PORT}",
            "--node-ip-address", net.addr["node0"], "--host", "127.0.0.1", "--port", "{port}",
            "--served-model-name", "{served_model}", "--workers", "2", "--wait-s", "60",
        ]  # fmt: skip
        write_lane(
            lanes,
            "engine",
            {"role": "stable", "model": MODEL, "port": ENGINE_PORT, "runs_on": "ray",
             "command": engine, "health": ENGINE_HEALTH, "restart": RESTART,
             "stop": {"timeout_s": 5.0}},
        )  # fmt: skip
    return cfg


async def until(
    daemon: DaemonProc, lane: str, check: Callable[[LaneInfo], bool], what: str
) -> LaneInfo:
    """Poll ``lane`` on ``daemon`` until ``check`` holds (at most WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        info = (await daemon.lanes())[lane]
        if check(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S:g}s: {info}\n{logs(daemon)}")
        await asyncio.sleep(0.1)


def logs(daemon: DaemonProc) -> str:
    return daemon.stderr()[-3000:]


def log_times(daemon: DaemonProc, lane: str, event: str) -> list[float]:
    """Epoch times of ``event`` lines about ``lane`` in the daemon's JSON log."""
    times = []
    for line in daemon.stderr().splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if doc.get("lane") == lane and doc.get("event") == event:
                times.append(datetime.fromisoformat(doc["timestamp"]).timestamp())
    return times


def engine_timings(logs: Path) -> dict[str, float]:
    """What the engine's log says of its starts (first start, and the restart's): from its
    spawn to the head's GCS taking the driver, and to serving (two nodes, actors placed)."""
    found: dict[str, float] = {}
    for log, run in ((logs / "engine.log.1", "first start"), (logs / "engine.log", "restart")):
        text = log.read_text(errors="replace") if log.exists() else ""
        if joined := re.search(r"connected to \S+ in ([\d.]+)s", text):
            found[f"engine {run}: spawn to joined the Ray head"] = float(joined[1])
        if serving := re.search(r"serving on \S+, ([\d.]+)s after start", text):
            found[f"engine {run}: spawn to serving (2 nodes, actors placed)"] = float(serving[1])
    return found


def group_ready(info: LaneInfo) -> bool:
    """The group is ready and the leader's last poll saw every member up."""
    group = info.group
    return (
        group is not None
        and group.state == "ready"
        and [(m.host, m.status) for m in group.members] == [(h, "ready") for h in MEMBERS]
    )


def describe(found: list[Found]) -> str:
    return "\n".join(f"  {f.pid} pgid {f.pgid} sid {f.sid} ({f.why}): {f.cmdline}" for f in found)


async def test_qwend_supervises_a_real_ray_cluster_on_two_hosts(tmp_path: Path) -> None:
    require_netns()
    venv = ray_venv()
    token = token_file(tmp_path)
    temp = short_dir()  # Ray's sockets live under its temp dir: AF_UNIX paths are short
    timings: dict[str, float] = {}
    with cluster_hosts(MEMBERS, prefix="qrr", net="10.225") as net:
        made = {*net.namespace.values(), net.bridge}
        try:
            async with contextlib.AsyncExitStack() as stack:
                started = time.monotonic()
                # Started follower first, so that the leader's qwend stops first: it
                # stops the engine, then the members on both hosts through the peer link.
                d = {
                    host: await stack.enter_async_context(
                        run_daemon(
                            host_config(tmp_path, net, host, token, venv, temp),
                            prefix=net.exec_in(host),
                        )
                    )
                    for host in reversed(MEMBERS)
                }
                head = await until(d["node0"], "ray", group_ready, "Ray group ready")
                timings["group ready after the daemons' start"] = time.monotonic() - started
                assert head.group is not None and head.group.restarts == 0, head.group
                engine = await until(d["node0"], "engine", lambda i: i.state == "ready",
                                     "engine ready")  # fmt: skip
                timings["engine ready after the daemons' start"] = time.monotonic() - started
                answer = ask(net)
                assert answer["status"] == 200 and answer["lane"] == "engine", answer
                assert {f"@{net.addr['node0']}", f"@{net.addr['node1']}"} <= {
                    w[w.index("@") :] for w in answer["content"].split()
                }, f"actors on both hosts answer: {answer}"
                await d["node0"].served("engine")

                follower = (await d["node1"].lanes())["ray"]
                assert follower.pid is not None and head.pid is not None and engine.pid
                old = {"head": head.pid, "follower": follower.pid, "engine": engine.pid}
                # Ray's raylet puts each worker in a process group of its own: outside
                # the member's group, inside its session (what qwend kills since).
                actors = [f for f in ray_processes(venv, [net.namespace["node1"]])
                          if f.cmdline.startswith("ray::Worker")]  # fmt: skip
                assert actors, "the engine's actor on node1"
                assert all(a.pgid == a.pid and a.sid == old["follower"] for a in actors), actors
                killed_at = time.time()
                t_kill = time.monotonic()
                os.kill(follower.pid, signal.SIGKILL)
                await until(d["node1"], "ray", lambda i: i.pid != old["follower"],
                            "node1's member reaped")  # fmt: skip
                left = [f for f in ray_processes(venv, made) if f.sid == old["follower"]]
                assert not left, f"the killed member's processes outlived it:\n{describe(left)}"
                back = await until(
                    d["node0"], "ray",
                    lambda i: group_ready(i) and i.group is not None and i.group.restarts > 0
                    and i.pid != old["head"],
                    "group back after the follower's kill",
                )  # fmt: skip
                timings["group ready again after SIGKILL of node1's ray start"] = (
                    time.monotonic() - t_kill
                )
                engine = await until(
                    d["node0"], "engine", lambda i: i.state == "ready" and i.pid != old["engine"],
                    "engine back",
                )  # fmt: skip
                timings["engine ready again after SIGKILL"] = time.monotonic() - t_kill
                again = (await d["node1"].lanes())["ray"]
                assert back.pid not in (None, old["head"]), "the head member restarted too"
                assert again.pid not in (None, old["follower"])
                assert back.started_at and again.started_at and engine.started_at
                assert back.started_at <= again.started_at, "head first (leader_first)"
                assert engine.started_at >= again.started_at, "engine after every member"
                # The engine went before the head member was stopped for the unit restart.
                engine_gone = [t for t in log_times(d["node0"], "engine", "lane process exited")
                               if t >= killed_at]  # fmt: skip
                head_stopping = [t for t in log_times(d["node0"], "ray", "stopping lane")
                                 if t >= killed_at]  # fmt: skip
                assert engine_gone and head_stopping, logs(d["node0"])
                assert min(engine_gone) <= min(head_stopping), "engine stopped first"
                answer = ask(net)
                assert answer["status"] == 200 and answer["lane"] == "engine", answer
                assert f"@{net.addr['node1']}" in answer["content"], answer
                timings |= engine_timings(tmp_path / "node0" / "logs")
                stopping = time.monotonic()
            timings["both qwends stopped (engine, then members)"] = time.monotonic() - stopping
            for host, daemon in d.items():
                assert daemon.proc.returncode == 0, f"qwend on {host} did not stop by itself"
            left = ray_processes(venv, made)
            for host, daemon in d.items():
                assert daemon.leftovers() == [], f"qwend on {host} left lane processes behind"
            assert not left, f"Ray processes outlived both qwends:\n{describe(left)}"
        finally:
            for found in ray_processes(venv, made):  # a failed run must not leak a cluster
                with contextlib.suppress(ProcessLookupError):
                    os.kill(found.pid, signal.SIGKILL)
            shutil.rmtree(temp, ignore_errors=True)
            for what, seconds in timings.items():
                print(f"real-ray timing: {what} = {seconds:.2f} s")
    assert not made & set(namespaces()), "namespaces left behind"
