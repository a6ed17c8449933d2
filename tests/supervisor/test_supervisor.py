"""The supervisor with real lane processes (tests/lanescripts/lane.py)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from qwend.broadcast import Subscription
from qwend.config.model import Config, DaemonConfig, LaneConfig
from qwend.errors import LaneError, PreflightError
from qwend.routing.lanetable import LaneTable
from qwend.supervisor import preflight as preflight_module
from qwend.supervisor import supervisor as supervisor_module
from qwend.supervisor.health import Liveness
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import LaneEvent, Supervisor
from tests.support.lanescripts.factory import get_json, make_lane, pid_alive
from tests.support.polling import SLACK_S

S = LaneState
SupFactory = Callable[..., Supervisor]


def config_for(tmp_path: Path, *lanes: LaneConfig) -> Config:
    return Config(daemon=DaemonConfig(log_dir=tmp_path / "logs", lane_log_keep=2), lanes=lanes)


@pytest.fixture
async def make_sup(tmp_path: Path) -> AsyncIterator[SupFactory]:
    made: list[Supervisor] = []

    def factory(*lanes: LaneConfig, **kwargs: object) -> Supervisor:
        sup = Supervisor(config_for(tmp_path, *lanes), LaneTable(), **kwargs)  # type: ignore[arg-type]
        made.append(sup)
        return sup

    yield factory
    for sup in made:
        await sup.shutdown(drain_timeout=0)


async def wait_for_state(
    events: Subscription[LaneEvent], lane: str, state: LaneState, timeout: float = 20.0
) -> LaneEvent:
    """The next event taking ``lane`` into ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(anext(events), max(0.01, deadline - time.monotonic()))
        if event.lane == lane and event.new is state:
            return event


async def test_lanes_reach_ready_with_their_devices(make_sup: SupFactory) -> None:
    a = make_lane("a", npus=(1, 0))
    b = make_lane("b", npus=(2,))
    standby = make_lane("c", npus=(3,), role="b", standby=True)
    sup = make_sup(a, b, standby)
    events = sup.subscribe()
    await sup.start()
    assert sup.snapshot("a").state is S.STARTING
    await sup.wait_ready("a", 20)
    await sup.wait_ready("b", 20)
    assert sup.snapshot("c").state is S.STOPPED
    for lane, devices in ((a, "0,1"), (b, "2")):
        info = await get_json(f"{lane.base_url}/env")
        assert isinstance(info, dict)
        assert info["ASCEND_RT_VISIBLE_DEVICES"] == devices
        snap = sup.snapshot(lane.name)
        assert snap.pid == info["pid"]
        assert snap.accepting and snap.active
        assert snap.started_at is not None and snap.started_at <= time.time()
    table = {lane.name: lane for lane in sup._table.snapshot()}
    assert table["a"].accepting and table["a"].active
    assert not table["c"].active and not table["c"].accepting
    assert sup.status_line() == "2/2 lanes ready"
    # The NPU monitor sees only lanes holding NPUs, not the stopped standby.
    assert sup.lane_npus() == {"a": (1, 0), "b": (2,)}
    assert set(sup.lane_pids()) == {"a", "b"}
    seen = [(e.lane, e.new) for e in [await anext(events) for _ in range(len(events))]]
    assert ("a", S.STARTING) in seen and ("a", S.READY) in seen
    assert any("listening on" in line for line in sup.log_tail("a", 50))
    await sup.stop_lane("b")  # ends on qwend's SIGTERM: a requested stop, not a kill
    assert sup.snapshot("b").last_exit == "stopped"


async def test_kill_9_restarts_after_backoff(make_sup: SupFactory) -> None:
    sup = make_sup(make_lane("a"))
    events = sup.subscribe()
    await sup.start()
    await sup.wait_ready("a", 20)
    old_pid = sup.snapshot("a").pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    backoff = await wait_for_state(events, "a", S.BACKOFF)
    assert backoff.reason is not None and "signal SIGKILL" in backoff.reason
    assert sup._table.get("a") is not None and not sup._table.get("a").accepting  # type: ignore[union-attr]
    await wait_for_state(events, "a", S.READY)
    snap = sup.snapshot("a")
    assert snap.pid not in (None, old_pid)
    assert snap.restarts == 1
    assert snap.last_exit == "signal SIGKILL"
    assert not pid_alive(old_pid)
    assert sup.log_tail("a", 100, previous=True)  # the killed run's log was rotated


async def test_crash_on_every_start_ends_failed(make_sup: SupFactory) -> None:
    lane = make_lane("a", extra=["--crash-on-start"])
    sup = make_sup(lane)
    events = sup.subscribe()
    await sup.start()
    with pytest.raises(LaneError, match="did not become ready"):
        await sup.wait_ready("a", 20)
    failed = await wait_for_state(events, "a", S.FAILED, timeout=30)
    assert failed.reason is not None
    assert "crash loop: 4 crashes" in failed.reason
    assert "exit 3 during start" in failed.reason
    snap = sup.snapshot("a")
    assert snap.restarts == lane.restart.crash_loop_limit
    assert snap.last_exit == "exit 3"
    assert sup.status_line() == "0/1 lanes ready, 1 failed"
    # It stays down until an operator acts (nothing to await: the behaviour is that nothing
    # happens, for twice as long as the longest restart backoff) ...
    await asyncio.sleep(2 * lane.restart.backoff_max_s)
    assert sup.snapshot("a").state is S.FAILED
    # ... and a start resets the crash history and tries again.
    await sup.start_lane("a")
    assert sup.snapshot("a").state is S.STARTING
    await wait_for_state(events, "a", S.BACKOFF)


@pytest.mark.slow
async def test_hanging_health_makes_the_lane_unhealthy_then_restarts_it(
    make_sup: SupFactory, tmp_path: Path
) -> None:
    hang = tmp_path / "hang"
    sup = make_sup(make_lane("a", extra=["--hang-health-file", str(hang)]))
    events = sup.subscribe()
    await sup.start()
    await sup.wait_ready("a", 20)
    old_pid = sup.snapshot("a").pid
    hang.touch()
    unhealthy = await wait_for_state(events, "a", S.UNHEALTHY)
    assert unhealthy.reason is not None
    assert "liveness failed 2 times in a row" in unhealthy.reason
    assert not sup.snapshot("a").accepting
    await wait_for_state(events, "a", S.BACKOFF)
    hang.unlink()
    await wait_for_state(events, "a", S.READY)
    assert sup.snapshot("a").pid != old_pid
    assert old_pid is not None and not pid_alive(old_pid)


async def test_process_ignoring_sigterm_is_killed_after_stop_timeout(
    make_sup: SupFactory,
) -> None:
    sup = make_sup(make_lane("a", extra=["--ignore-term", "--spawn-child"], stop_timeout=1.0))
    await sup.start()
    await sup.wait_ready("a", 20)
    pid = sup.snapshot("a").pid
    assert pid is not None
    started = time.monotonic()
    await sup.stop_lane("a")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + SLACK_S
    snap = sup.snapshot("a")
    assert snap.state is S.STOPPED
    assert snap.last_exit == "stopped (signal SIGKILL)"  # asked to stop, then killed
    assert snap.pid is None
    assert not pid_alive(pid)


async def test_busy_port_is_a_preflight_failure_naming_the_pid(make_sup: SupFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sup = make_sup(make_lane("a", port=sock.getsockname()[1]))
        events = sup.subscribe()
        await sup.start()
        backoff = await wait_for_state(events, "a", S.BACKOFF)
    assert backoff.reason is not None
    assert "is already in use" in backoff.reason
    assert f"PID {os.getpid()}" in backoff.reason or "cannot see" in backoff.reason


async def test_npus_claimed_by_a_running_lane_refuse_a_start(make_sup: SupFactory) -> None:
    a = make_lane("a", npus=(0, 1))
    b = make_lane("b", npus=(1,), role="a", standby=True)
    sup = make_sup(a, b)
    events = sup.subscribe()
    await sup.start()
    await sup.wait_ready("a", 20)
    await sup.start_lane("b")
    backoff = await wait_for_state(events, "b", S.BACKOFF)
    assert backoff.reason is not None
    assert "NPU 1 is claimed by running lane a" in backoff.reason
    await sup.stop_lane("b")
    assert sup.snapshot("b").state is S.STOPPED


async def test_pre_start_warning_is_shown_and_error_blocks(make_sup: SupFactory) -> None:
    async def pre_start(lane: LaneConfig) -> str | None:
        if lane.name == "bad":
            raise PreflightError("lane bad: NPU 0 still holds 20 GB")
        return f"{lane.name}: NPU busy"

    sup = make_sup(make_lane("a"), make_lane("bad", npus=(5,)), pre_start=pre_start)
    events = sup.subscribe()
    await sup.start()
    await sup.wait_ready("a", 20)
    assert sup.snapshot("a").warnings == ("a: NPU busy",)
    backoff = await wait_for_state(events, "bad", S.BACKOFF)
    assert backoff.reason is not None and "still holds 20 GB" in backoff.reason


async def test_drain_set_active_and_unknown_lane(make_sup: SupFactory) -> None:
    a = make_lane("a")
    b = make_lane("b", role="a", standby=True, npus=(1,))
    sup = make_sup(a, b)
    await sup.start()
    await sup.start_lane("b")
    await sup.wait_ready("a", 20)
    await sup.wait_ready("b", 20)
    assert sup.active_lanes() == {"a": "a"}
    assert not sup.snapshot("b").accepting
    sup.set_active("a", "b")
    assert sup.snapshot("b").accepting and sup._table.get("b").active  # type: ignore[union-attr]
    assert not sup._table.get("a").active  # type: ignore[union-attr]
    await sup.drain_lane("a")
    assert sup.snapshot("a").state is S.DRAINING
    assert not sup._table.get("a").accepting  # type: ignore[union-attr]
    await sup.start_lane("a")  # resumes a drained lane
    assert sup.snapshot("a").state is S.READY
    with pytest.raises(LaneError, match="serves role 'a', not 'x'"):
        sup.set_active("x", "a")
    with pytest.raises(LaneError, match="no lane named 'zz'"):
        sup.snapshot("zz")


async def test_reload_restarts_only_the_changed_lane(make_sup: SupFactory, tmp_path: Path) -> None:
    a, b, c = make_lane("a", npus=(0,)), make_lane("b", npus=(1,)), make_lane("c", npus=(2,))
    sup = make_sup(a, b, c)
    await sup.start()
    for name in "abc":
        await sup.wait_ready(name, 20)
    pids = {s.name: s.pid for s in sup.snapshots()}
    d = make_lane("d", npus=(3,))
    b2 = replace(b, env={"NEW": "1"})
    a2 = replace(a, health=replace(a.health, failure_threshold=9))  # not spawn-relevant
    report = await sup.reload(config_for(tmp_path, a2, b2, d))
    assert report.restarted == ("b",)
    assert report.started == ("d",)
    assert report.stopped == ("c",)
    assert report.unchanged == ("a",)
    assert sup.snapshot("a").pid == pids["a"]
    assert sup.snapshot("a").state is S.READY
    assert [s.name for s in sup.snapshots()] == ["a", "b", "d"]
    await sup.wait_ready("b", 20)
    await sup.wait_ready("d", 20)
    assert sup.snapshot("b").pid != pids["b"]
    info = await get_json(f"{b.base_url}/env")
    assert isinstance(info, dict) and info["env"]["NEW"] == "1"
    assert pids["c"] is not None and not pid_alive(pids["c"])
    assert sup.config.lane("a").health.failure_threshold == 9


async def test_shutdown_leaves_no_process(make_sup: SupFactory) -> None:
    sup = make_sup(make_lane("a", extra=["--spawn-child"]), make_lane("b", npus=(1,)))
    await sup.start()
    await sup.wait_ready("a", 20)
    await sup.wait_ready("b", 20)
    info = await get_json(f"{sup.config.lane('a').base_url}/env")
    assert isinstance(info, dict)
    pids = [info["child_pid"], *(s.pid for s in sup.snapshots())]
    await sup.shutdown(drain_timeout=1.0)
    assert all(isinstance(p, int) and not pid_alive(p) for p in pids)
    assert all(not lane.accepting for lane in sup._table.snapshot())
    assert {s.state for s in sup.snapshots()} == {S.STOPPED}


async def test_follow_log_streams_new_lines_and_rejects_unknown_lanes(
    make_sup: SupFactory,
) -> None:
    sup = make_sup(make_lane("a"))
    with pytest.raises(LaneError):
        sup.follow_log("nope")
    lines = sup.follow_log("a")
    await sup.start()
    first = await asyncio.wait_for(anext(lines), 10)
    assert first.startswith("--- qwend: starting lane a")
    await sup.wait_ready("a", 20)
    await lines.aclose()


async def test_an_internal_error_while_starting_backs_off_and_retries(
    make_sup: SupFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The preflight runs in the start path; make it fail like a daemon out of fds.
    failures = [OSError(errno.EMFILE, "Too many open files", "/proc")] * 2
    real = preflight_module.preflight

    def preflight(lane: LaneConfig, claiming: object) -> None:
        if failures:
            raise failures.pop()
        real(lane, claiming)  # type: ignore[arg-type]  # the supervisor passes lanes

    monkeypatch.setattr(supervisor_module, "preflight", preflight)
    sup = make_sup(make_lane("a"))
    events = sup.subscribe()
    await sup.start()
    backoff = await wait_for_state(events, "a", S.BACKOFF)
    assert backoff.reason is not None and "Too many open files" in backoff.reason
    assert "retrying in" in backoff.reason
    last_error = sup.snapshot("a").last_error
    assert last_error is not None and "OSError" in last_error
    await wait_for_state(events, "a", S.READY)
    assert not failures
    assert sup.snapshot("a").last_error is None  # cleared once ready


async def test_an_internal_error_while_probing_a_ready_lane_restarts_it(
    make_sup: SupFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sup = make_sup(make_lane("a"))
    events = sup.subscribe()
    await sup.start()
    await sup.wait_ready("a", 20)
    old_pid = sup.snapshot("a").pid
    real = Liveness.probe_once
    failures = [RuntimeError("probe exploded")]

    async def probe_once(self: Liveness) -> str | None:
        if failures:
            raise failures.pop()
        return await real(self)

    monkeypatch.setattr(Liveness, "probe_once", probe_once)
    backoff = await wait_for_state(events, "a", S.BACKOFF)
    assert backoff.reason is not None and "RuntimeError: probe exploded" in backoff.reason
    assert not sup.snapshot("a").accepting
    await wait_for_state(events, "a", S.READY)
    snap = sup.snapshot("a")
    assert snap.pid not in (None, old_pid)
    assert old_pid is not None and not pid_alive(old_pid)
    assert snap.restarts == 1
