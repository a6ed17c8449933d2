"""qwend-sim's Ray mode with real head, worker and engine processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import pytest

from qwend.sim.cli import main
from tests.support.polling import wait_for
from tests.support.simlane import SimLaneFactory, SimLaneProcess, free_port, run_npu_smi
from tests.support.simray import FAST_LINK, RayNodeProcess, start_ray_node

WORKER_PROCESS = "ray::RayWorkerWrapper"


class RayNodeFactory(Protocol):
    def __call__(self, name: str, flags: Sequence[str]) -> RayNodeProcess: ...


@pytest.fixture
def ray_node(sim_state_dir: Path, tmp_path: Path) -> Iterator[RayNodeFactory]:
    """Factory: ``ray_node(name, flags)`` starts a node; all are stopped at teardown."""
    started: list[RayNodeProcess] = []

    def factory(name: str, flags: Sequence[str]) -> RayNodeProcess:
        node = start_ray_node(sim_state_dir, name, flags, log_dir=tmp_path / "sim-logs")
        started.append(node)
        return node

    yield factory
    for node in started:
        node.stop()


def head_flags(port: int, npus: int = 2) -> list[str]:
    return ["--head", "--port", str(port), "--num-gpus", str(npus)]


def worker_flags(port: int, ip: str, npus: int = 2) -> list[str]:
    # Ray's own spelling of the recipe: --flag=value.
    return [f"--address=127.0.0.1:{port}", f"--node-ip-address={ip}", f"--num-gpus={npus}"]


def start_engine(
    sim_lane: SimLaneFactory, port: int, tp: int, pp: int, timeout_s: float = 60
) -> SimLaneProcess:
    return sim_lane(
        lane_name="engine",
        npus=None,  # the driver holds no NPU: its workers run on the Ray nodes
        wait=False,
        startup_delay=0.2,
        env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"},
        extra=[
            "--distributed-executor-backend", "ray",
            "--tensor-parallel-size", str(tp),
            "--pipeline-parallel-size", str(pp),
            "--ray-placement-timeout-s", str(timeout_s),
            *FAST_LINK,
        ],
    )  # fmt: skip


def health(lane: SimLaneProcess) -> int | None:
    """The /health status, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{lane.base_url}/health", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def on_npus(state_dir: Path, pid: int) -> bool:
    """npu-smi shows a process ``pid`` on some NPU."""
    table = run_npu_smi(state_dir, "info").stdout
    return re.search(rf"\|\s*{pid}\s*\|", table) is not None


def joined(head: RayNodeProcess) -> int:
    return head.log_text().count("Ray node joined")


class Cluster(NamedTuple):
    head: RayNodeProcess
    w1: RayNodeProcess
    w2: RayNodeProcess
    engine: SimLaneProcess
    port: int


def cluster(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory, tp: int = 2, pp: int = 3
) -> Cluster:
    """Head + two workers (2 NPUs each, joined in this order: placement packs the head's
    NPUs first, then w1's) and a serving engine on them."""
    port = free_port()
    head = ray_node("head", head_flags(port))
    w1 = ray_node("w1", worker_flags(port, "127.0.0.2"))
    wait_for(lambda: joined(head) == 1, what="w1's join")
    w2 = ray_node("w2", worker_flags(port, "127.0.0.3"))
    wait_for(lambda: joined(head) == 2, what="w2's join")
    engine = start_engine(sim_lane, port, tp, pp)
    engine.wait_serving()
    return Cluster(head, w1, w2, engine, port)


def test_the_engine_serves_only_once_the_cluster_has_t_x_p_npus(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory, sim_state_dir: Path
) -> None:
    port = free_port()
    head = ray_node("head", head_flags(port))
    w1 = ray_node("w1", worker_flags(port, "127.0.0.2"))
    wait_for(lambda: joined(head) == 1, what="the first worker's join")
    engine = start_engine(sim_lane, port, tp=2, pp=3)
    wait_for(
        lambda: '"free": 4, "total": 4, "nodes": 2' in engine.log_text(),
        what="the engine waiting for NPUs",
    )
    assert health(engine) is None, "served before the cluster had 6 NPUs"
    assert WORKER_PROCESS not in run_npu_smi(sim_state_dir, "info").stdout
    w2 = ray_node("w2", worker_flags(port, "127.0.0.3"))
    engine.wait_serving()
    assert health(engine) == 200
    log = engine.log_text()
    assert "Ray placement group ready" in log
    for name in ("head", "w1", "w2"):
        assert f'"{name} (' in log, f"{name} holds none of the 6 workers"
    for node in (head, w1, w2):
        assert on_npus(sim_state_dir, node.pid), "a node's workers are missing from npu-smi"
    assert run_npu_smi(sim_state_dir, "info").stdout.count(WORKER_PROCESS[:24]) == 6
    assert engine.stop() == 0
    wait_for(
        lambda: WORKER_PROCESS not in run_npu_smi(sim_state_dir, "info").stdout,
        what="the nodes to free the engine's NPUs",
    )
    assert "Ray driver gone; its NPUs are free" in head.log_text()
    assert all(n.proc.poll() is None for n in (head, w1, w2)), "a node died with the engine"


def test_a_killed_worker_ends_the_engine_naming_the_lost_node(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory
) -> None:
    head, w1, w2, engine, _ = cluster(ray_node, sim_lane)
    w2.proc.send_signal(signal.SIGKILL)
    assert engine.wait_exit(timeout=15) == 1
    log = engine.log_text()
    assert "Ray node w2 (127.0.0.3, node id" in log
    assert "holding 2 of the engine's 6 workers died" in log
    assert head.proc.poll() is None and w1.proc.poll() is None


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGKILL, -9), (signal.SIGTERM, 0)])
def test_a_lost_head_ends_the_workers_and_the_engine(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory, signum: int, status: int
) -> None:
    head, w1, w2, engine, _ = cluster(ray_node, sim_lane)
    head.proc.send_signal(signum)
    assert head.wait_exit() == status
    for node in (w1, w2):
        assert node.wait_exit(timeout=15) == 1
        assert "Ray head lost" in node.log_text()
    assert engine.wait_exit(timeout=15) == 1
    assert "Ray head at 127.0.0.1:" in engine.log_text()
    assert "Ray node dead" not in head.log_text(), "the head's own shutdown reported as deaths"


def test_a_killed_engine_frees_its_npus_for_the_next_one(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory, sim_state_dir: Path
) -> None:
    head, w1, w2, engine, port = cluster(ray_node, sim_lane)  # all 6 NPUs
    engine.proc.send_signal(signal.SIGKILL)
    wait_for(lambda: "Ray driver gone" in head.log_text(), what="the head to free the NPUs")
    again = start_engine(sim_lane, port, tp=2, pp=3)
    again.wait_serving()
    assert run_npu_smi(sim_state_dir, "info").stdout.count(WORKER_PROCESS) == 6
    assert all(n.proc.poll() is None for n in (head, w1, w2)), "the cluster went down"


def test_a_node_may_leave_its_workers_hbm_behind_for_a_while(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory, sim_state_dir: Path
) -> None:
    port = free_port()
    head = ray_node("head", head_flags(port))
    leaky = ray_node("leaky", [*worker_flags(port, "127.0.0.2"), "--leak-npu-memory-s=2"])
    wait_for(lambda: joined(head) == 1, what="the worker's join")
    engine = start_engine(sim_lane, port, tp=2, pp=2)
    engine.wait_serving()
    assert leaky.stop() == 0
    assert engine.wait_exit() == 1
    assert on_npus(sim_state_dir, leaky.pid), "the leaking node's HBM vanished with it"
    wait_for(lambda: not on_npus(sim_state_dir, leaky.pid), what="the leak window to end")
    assert not on_npus(sim_state_dir, head.pid), "the head kept the freed workers' HBM"


def test_a_node_without_the_engines_workers_may_die(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory
) -> None:
    _, _, w2, engine, _ = cluster(ray_node, sim_lane, tp=2, pp=2)
    w2.proc.send_signal(signal.SIGKILL)  # the head's and w1's NPUs hold the 4 workers
    wait_for(
        lambda: "a Ray node without workers of this engine died" in engine.log_text(),
        what="the engine to hear of w2",
    )
    assert health(engine) == 200
    assert engine.proc.poll() is None


def test_a_worker_started_before_its_head_joins_once_the_head_is_up(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory
) -> None:
    port = free_port()
    early = ray_node("early", worker_flags(port, "127.0.0.2"))
    engine = start_engine(sim_lane, port, tp=4, pp=1)
    wait_for(lambda: "connecting to the Ray cluster" in engine.log_text(), what="the engine")
    assert early.proc.poll() is None, "the worker gave up while the head was not up yet"
    head = ray_node("head", head_flags(port))
    wait_for(lambda: "Ray worker joined" in early.log_text(), what="the early worker's join")
    engine.wait_serving()
    assert joined(head) == 1


def test_an_engine_with_too_few_npus_exits_after_its_placement_timeout(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory
) -> None:
    port = free_port()
    head = ray_node("head", head_flags(port))
    engine = start_engine(sim_lane, port, tp=8, pp=2, timeout_s=1)
    assert engine.wait_exit(timeout=15) == 1
    log = engine.log_text()
    assert "placement group of 16 NPU bundles" in log
    assert "not ready within 1s: the cluster has 2 free of 2 NPUs on 1 nodes" in log
    assert health(engine) is None
    wait_for(lambda: "Ray driver gone" in head.log_text(), what="the head to free the request")
    assert head.proc.poll() is None


def test_a_silent_worker_is_declared_dead_after_the_heartbeat_timeout(
    ray_node: RayNodeFactory, sim_lane: SimLaneFactory
) -> None:
    head, w1, w2, engine, _ = cluster(ray_node, sim_lane)
    w1.proc.send_signal(signal.SIGSTOP)
    wait_for(lambda: "Ray node dead" in head.log_text(), what="the head to notice the silence")
    assert "no heartbeat for 1.5s" in head.log_text()
    assert engine.wait_exit(timeout=15) == 1
    assert "Ray node w1 (127.0.0.2" in engine.log_text()
    w1.proc.send_signal(signal.SIGCONT)
    assert w1.wait_exit(timeout=15) == 1, "a node the head declared dead kept running"
    assert w2.proc.poll() is None


def test_stopped_nodes_exit_zero(ray_node: RayNodeFactory) -> None:
    port = free_port()
    unmodelled = [
        "--dashboard-host=0.0.0.0",
        "--include-dashboard",
        "true",
        "--disable-usage-stats",
    ]
    head = ray_node("head", [*head_flags(port), *unmodelled])
    worker = ray_node("w1", worker_flags(port, "127.0.0.2"))
    wait_for(lambda: joined(head) == 1, what="the worker's join")
    assert worker.stop() == 0
    wait_for(lambda: "Ray node dead" in head.log_text(), what="the head to drop the worker")
    assert head.stop() == 0
    assert '"--dashboard-host", "--include-dashboard"' in head.log_text()
    assert "accepted but not modelled by the sim" in head.log_text()


def closed_by(port: int, payload: bytes) -> bytes:
    """Send ``payload`` to the head and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_hostile_client_is_dropped_and_the_head_keeps_serving(ray_node: RayNodeFactory) -> None:
    port = free_port()
    head = ray_node("head", head_flags(port))
    wait_for(lambda: "Ray head started" in head.log_text(), what="the head")
    assert closed_by(port, b"GET / HTTP/1.1\r\n\r\n") == b""
    assert closed_by(port, b'{"type": "ping"}' + b" " * 100_000 + b"\n") == b""
    refused = closed_by(port, b'{"type": "hosting", "npus": 1}\n')
    assert b"expected register or place first" in refused
    assert closed_by(port, b"") == b"", "a silent client was never dropped"
    worker = ray_node("w1", worker_flags(port, "127.0.0.2"))
    wait_for(lambda: "Ray worker joined" in worker.log_text(), what="a join after the junk")
    assert head.proc.poll() is None


def test_a_worker_without_a_head_gives_up_after_the_connect_timeout(
    ray_node: RayNodeFactory,
) -> None:
    port = free_port()
    worker = ray_node("lonely", [*worker_flags(port, "127.0.0.2"), "--ray-connect-timeout-s=1"])
    assert worker.wait_exit(timeout=15) == 1
    assert f"no Ray head at 127.0.0.1:{port} within 1s" in worker.log_text()


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["ray", "start", "--head", "--num-gpus", "2"], {}, "ray start needs --block"),
        (["ray", "start", "--block", "--head", "--address=h:1"], {}, "drop --address"),
        (["ray", "start", "--block"], {}, "a worker needs --address"),
        (["ray", "start", "--block", "--address", "nohost"], {}, "is not HOST:PORT"),
        (
            ["ray", "start", "--block", "--head", "--num-gpus=8"],
            {"ASCEND_RT_VISIBLE_DEVICES": "0,1"},
            "ASCEND_RT_VISIBLE_DEVICES lists 2",
        ),
        (["ray", "start", "--block", "--head", "--resources={NPU}"], {}, "--resources is not JSON"),
        (
            ["serve", "--distributed-executor-backend", "ray"],
            {"RAY_ADDRESS": "10.0.0.1"},
            "RAY_ADDRESS: address",
        ),
        (
            ["serve", "--distributed-executor-backend=ray", "--data-parallel-size=2"],
            {},
            "drop the DP flags",
        ),
    ],
)
def test_impossible_ray_flags_are_usage_errors(
    argv: list[str], env: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv, env=env)
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err
