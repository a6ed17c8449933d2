"""qwend-sim's multi-node data parallel modes, with real leader and headless processes."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from collections.abc import Sequence

import pytest

from qwend.sim.cli import main
from tests.support.polling import wait_for
from tests.support.simlane import SimLaneFactory, SimLaneProcess, free_port

FAST_LINK = ["--dp-heartbeat-s", "0.1", "--dp-heartbeat-timeout-s", "1"]


def dp_flags(rpc_port: int, size: int = 2, local: int = 1, start: int | None = None) -> list[str]:
    flags = [
        "--data-parallel-size", str(size),
        "--data-parallel-size-local", str(local),
        "--data-parallel-address", "127.0.0.1",
        "--data-parallel-rpc-port", str(rpc_port),
        *FAST_LINK,
    ]  # fmt: skip
    if start is not None:
        flags += ["--headless", "--data-parallel-start-rank", str(start)]
    return flags


def health(lane: SimLaneProcess) -> int | None:
    """The /health status, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{lane.base_url}/health", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def start(sim_lane: SimLaneFactory, name: str, flags: Sequence[str]) -> SimLaneProcess:
    return sim_lane(lane_name=name, extra=[*flags], wait=False, startup_delay=0.2)


def test_the_leader_serves_only_once_every_rank_joined(sim_lane: SimLaneFactory) -> None:
    rpc = free_port()
    leader = start(sim_lane, "lead", dp_flags(rpc))
    wait_for(lambda: "DP coordinator listening" in leader.log_text(), what="the coordinator")
    wait_for(lambda: '"loaded' in leader.log_text() or "waiting" in leader.log_text(), 5)
    assert health(leader) is None, "served before its follower joined"
    follower = start(sim_lane, "follow", dp_flags(rpc, start=1))
    leader.wait_serving()
    assert health(leader) == 200
    assert "joined the DP leader" in follower.log_text()
    assert follower.proc.poll() is None


def test_a_lost_follower_ends_the_leader_like_a_dead_engine_core(
    sim_lane: SimLaneFactory,
) -> None:
    rpc = free_port()
    leader = start(sim_lane, "lead", dp_flags(rpc))
    follower = start(sim_lane, "follow", dp_flags(rpc, start=1))
    leader.wait_serving()
    follower.proc.send_signal(signal.SIGKILL)
    assert leader.wait_exit(timeout=15) == 1
    assert "DP engine lost" in leader.log_text()
    assert "follow" in leader.log_text()


def test_a_follower_exits_when_its_leader_goes_away(sim_lane: SimLaneFactory) -> None:
    rpc = free_port()
    leader = start(sim_lane, "lead", dp_flags(rpc))
    follower = start(sim_lane, "follow", dp_flags(rpc, start=1))
    leader.wait_serving()
    assert leader.stop() == 0
    assert follower.wait_exit(timeout=15) == 1
    assert "DP leader lost" in follower.log_text()


def test_a_stopped_follower_exits_zero_and_a_follower_may_join_before_the_leader(
    sim_lane: SimLaneFactory,
) -> None:
    rpc = free_port()
    follower = start(sim_lane, "follow", dp_flags(rpc, start=1))
    wait_for(lambda: "loading model" in follower.log_text(), what="the follower's start")
    leader = start(sim_lane, "lead", dp_flags(rpc))
    leader.wait_serving()
    assert follower.stop() == 0
    assert leader.wait_exit(timeout=15) == 1


def test_a_second_follower_with_the_same_start_rank_is_refused(sim_lane: SimLaneFactory) -> None:
    rpc = free_port()
    leader = start(sim_lane, "lead", dp_flags(rpc, size=3))
    first = start(sim_lane, "one", dp_flags(rpc, size=3, start=1))
    wait_for(lambda: "joined the DP leader" in first.log_text(), what="the first join")
    twin = start(sim_lane, "twin", dp_flags(rpc, size=3, start=1))
    assert twin.wait_exit(timeout=15) == 1
    assert "have joined already" in twin.log_text()
    assert health(leader) is None, "the leader served with rank 2 missing"
    assert first.proc.poll() is None


def test_a_follower_without_a_leader_gives_up_after_the_join_timeout(
    sim_lane: SimLaneFactory,
) -> None:
    rpc = free_port()
    follower = start(sim_lane, "follow", [*dp_flags(rpc, start=1), "--dp-join-timeout-s", "1"])
    assert follower.wait_exit(timeout=15) == 1
    assert f"no DP coordinator at 127.0.0.1:{rpc}" in follower.log_text()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--headless", "--data-parallel-size", "2"], "--data-parallel-start-rank >= 1"),
        (["--data-parallel-size", "2", "--data-parallel-start-rank", "1"], "runs from rank 0"),
        (
            ["--headless", "--data-parallel-size", "2", "--data-parallel-start-rank", "2"],
            "do not fit",
        ),
    ],
)
def test_impossible_layouts_are_usage_errors(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", *argv], env={})
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err
