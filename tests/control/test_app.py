"""The control API on a real Unix socket, driven through qwend.api.client."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from qwend.api.client import ControlClient, RemoteError
from qwend.api.messages import (
    ErrorCode,
    EventKind,
    LaneAction,
    LanesResponse,
    LaneStateChange,
    PromotionAccepted,
    PromotionEvent,
    PromotionOutcome,
    PromotionRecord,
)
from qwend.config.model import Config, MonitorConfig
from qwend.errors import ConfigError, ConfigIssue
from qwend.npu.monitor import NpuMonitor
from qwend.supervisor.reload import ReloadReport
from tests.support.control_fakes import FakeSupervisor, demo_config, serve_control


async def test_status_reports_daemon_lanes_stats_and_router() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        status = await client.status()
    assert status.daemon.version == "0.1.0"
    assert status.daemon.pid == os.getpid()
    assert status.daemon.config_path == "/etc/qwend/qwend.toml"
    assert status.daemon.control_socket == str(srv.path)
    assert status.active == {
        "multimodal": "multimodal",
        "stable": "stable",
        "throughput": "throughput",
    }
    by_name = {lane.name: lane for lane in status.lanes}
    stable = by_name["stable"]
    assert (stable.state, stable.active, stable.accepting, stable.npus) == (
        "ready",
        True,
        True,
        (1,),
    )
    assert stable.uptime_s is not None and stable.uptime_s >= 9
    assert stable.stats is not None
    assert stable.stats.ttft_p50_ms == 120.0
    assert stable.stats.tokens_per_s == 42.0
    assert by_name["recurrent_v2"].standby and by_name["recurrent_v2"].pid is None
    assert status.router == {"policy": "least_work", "lanes": ["stable"]}


async def test_lanes_and_one_lane() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        lanes = await client.lanes()
        one = await client.lane("throughput")
    assert [lane.name for lane in lanes.lanes][:3] == ["multimodal", "stable", "throughput"]
    assert one.npus == (2, 3)


async def test_unknown_lane_is_404_with_known_names() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        with pytest.raises(RemoteError) as info:
            await client.lane_action("nope", LaneAction.STOP)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.status == 404
    assert "configured lanes: multimodal, stable" in str(info.value)


@pytest.mark.parametrize(
    ("action", "state"),
    [
        (LaneAction.STOP, "stopped"),
        (LaneAction.DRAIN, "draining"),
        (LaneAction.RESTART, "starting"),
    ],
)
async def test_lane_actions_reach_supervisor_and_are_audited(
    action: LaneAction, state: str
) -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        with capture_logs() as logs:
            result = await client.lane_action("stable", action, force=True)
    assert result.action is action
    assert result.lane.state == state
    audit = [e for e in logs if e["event"] == "control action"]
    assert audit == [
        dict(audit[0]) | {"action": f"lane.{action.value}", "lane": "stable", "uid": os.getuid()}
    ]
    assert audit[0]["pid"] == os.getpid()


async def test_start_and_reset() -> None:
    sup = FakeSupervisor(demo_config()).with_state("stable_green", "failed")
    async with serve_control(sup) as srv, ControlClient(srv.path) as client:
        started = await client.lane_action("recurrent_v2", LaneAction.START)
        reset = await client.lane_action("stable_green", LaneAction.RESET)
        with pytest.raises(RemoteError) as info:
            await client.lane_action("stable", LaneAction.RESET)
    assert started.lane.state == "starting"
    assert reset.lane.state == "starting"
    assert info.value.code is ErrorCode.LANE_ERROR
    assert "not failed; nothing to reset" in str(info.value)


async def test_logs_tail_previous_and_follow() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        tail = await client.logs("stable", n=2)
        prev = await client.logs("stable", n=1, previous=True)
        srv.supervisor.follow.put_nowait("new line")
        followed = []
        async for line in client.follow_logs("stable", n=1):
            followed.append(line.line)
            if len(followed) == 2:
                break
    assert tail.lines == ("stable line 3", "stable line 4")
    assert prev.previous and prev.lines == ("prev stable line 4",)
    assert followed == ["stable line 4", "new line"]


class Monitor:
    def view(self) -> list[int]:
        return [0, 1]


async def test_npus_with_and_without_monitor() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        off = await client.npus()
    async with serve_control(monitor=Monitor()) as srv, ControlClient(srv.path) as client:
        on = await client.npus()
    assert not off.enabled and "disabled" in off.table
    assert on.enabled and on.view == {"npus": [0, 1]} and on.table == "2 NPUs\n"


async def test_npus_of_a_monitor_configured_off_say_it_is_off() -> None:
    """``[monitor] enabled = false`` still builds a monitor (it carries the reason); the
    answer must not claim a working monitor that merely has no NPU."""
    monitor = NpuMonitor(MonitorConfig(enabled=False), dict, dict)
    served = serve_control(monitor=monitor, real_npu_renderer=True)
    async with served as srv, ControlClient(srv.path) as client:
        answer = await client.npus()
    assert not answer.enabled
    assert "enabled = false" in str(answer.view)


async def test_promote_streams_progress_then_record(tmp_path: Path) -> None:
    async with serve_control(state_dir=tmp_path) as srv, ControlClient(srv.path) as client:
        items = [item async for item in client.promote("recurrent_v2")]
        status = await client.status()
    assert isinstance(items[0], PromotionAccepted)
    assert all(isinstance(i, PromotionEvent) for i in items[1:-1])
    record = items[-1]
    assert isinstance(record, PromotionRecord)
    assert record.outcome is PromotionOutcome.PROMOTED
    assert record.requested_by is not None and record.requested_by.pid == os.getpid()
    assert status.active["stable"] == "recurrent_v2"
    assert status.last_promotions[-1].id == record.id
    assert (tmp_path / "state.toml").exists()


async def test_promote_crashing_candidate_reports_rollback() -> None:
    sup = FakeSupervisor(demo_config(), crashing={"recurrent_v2"})
    async with serve_control(sup) as srv, ControlClient(srv.path) as client:
        items = [item async for item in client.promote("recurrent_v2")]
    record = items[-1]
    assert isinstance(record, PromotionRecord)
    assert record.outcome is PromotionOutcome.ROLLED_BACK
    assert record.reason is not None and "exited with status 1" in record.reason


async def test_concurrent_promotion_conflicts_and_busy_lane_refuses_actions() -> None:
    sup = FakeSupervisor(demo_config())
    sup.ready_gate = asyncio.Event()
    async with serve_control(sup) as srv, ControlClient(srv.path) as client:
        accepted = await client.promote_nowait("recurrent_v2", ready_timeout_s=5)
        with pytest.raises(RemoteError) as conflict:
            await client.promote_nowait("stable_green")
        with pytest.raises(RemoteError) as busy:
            await client.lane_action("stable", LaneAction.START)
        running = await client.promotions()
        sup.ready_gate.set()
        promotion = srv.promoter.get(accepted.id)
        assert promotion is not None
        await promotion.result()
    assert conflict.value.code is ErrorCode.CONFLICT and conflict.value.status == 409
    assert "already running" in str(conflict.value)
    assert busy.value.code is ErrorCode.CONFLICT
    assert [p.id for p in running.running] == [accepted.id]


async def test_promotion_continues_when_client_disconnects() -> None:
    sup = FakeSupervisor(demo_config())
    sup.ready_gate = asyncio.Event()
    async with serve_control(sup) as srv:
        async with ControlClient(srv.path) as client:
            async for item in client.promote("stable_green"):
                assert isinstance(item, PromotionAccepted)
                break
        sup.ready_gate.set()
        promotion = next(iter(srv.promoter._running.values()), None)
        if promotion is not None:
            await promotion.result()
        assert sup.active["stable"] == "stable_green"


async def test_rollback_and_unknown_role() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        [_ async for _ in client.promote("stable_green")]
        items = [item async for item in client.rollback("stable")]
        with pytest.raises(RemoteError) as unknown:
            await client.rollback_nowait("nope")
        with pytest.raises(RemoteError) as nothing:
            await client.rollback_nowait("throughput")
    record = items[-1]
    assert isinstance(record, PromotionRecord)
    assert record.kind == "rollback" and record.to_lane == "stable"
    assert unknown.value.code is ErrorCode.NOT_FOUND
    assert nothing.value.code is ErrorCode.PROMOTION_FAILED
    assert "no promotion of role 'throughput'" in str(nothing.value)


async def test_reload_errors_are_returned_and_shown_in_status_until_fixed() -> None:
    broken = True

    async def reload_cb() -> ReloadReport:
        if broken:
            raise ConfigError([ConfigIssue("lanes.d/x.toml", "lane.port", "must be 1-65535")])
        return await sup.reload(Config(lanes=demo_config().lanes))

    sup = FakeSupervisor(demo_config())
    async with serve_control(sup, reload_cb=reload_cb) as srv, ControlClient(srv.path) as client:
        bad = await client.reload()
        status_bad = await client.status()
        broken = False
        good = await client.reload()
        status_good = await client.status()
    assert not bad.ok
    assert [str(e) for e in bad.errors] == ["lanes.d/x.toml: lane.port: must be 1-65535"]
    assert status_bad.daemon.config_errors == bad.errors
    assert good.ok and "stable" in good.unchanged
    assert status_good.daemon.config_errors == ()


async def test_events_stream_hello_lane_changes_stats_and_promotions() -> None:
    async with serve_control() as srv, ControlClient(srv.path) as client:
        kinds: list[EventKind] = []
        changes: list[LaneStateChange] = []
        async for event in client.events(stats_interval_s=0.2):
            kinds.append(event.kind)
            if event.kind is EventKind.HELLO:
                await srv.supervisor.stop_lane("throughput")
            elif event.kind is EventKind.LANE:
                payload = event.payload()
                assert isinstance(payload, LaneStateChange)
                changes.append(payload)
                srv.promoter.start("stable_green", None)
            elif event.kind is EventKind.STATS:
                assert isinstance(event.payload(), LanesResponse)
            elif event.kind is EventKind.PROMOTION_RESULT:
                break
    assert kinds[0] is EventKind.HELLO
    assert EventKind.STATS in kinds and EventKind.PROMOTION in kinds
    assert changes[0] == LaneStateChange("throughput", "ready", "stopped", None, changes[0].at)


async def test_shutdown_ends_event_stream_promptly() -> None:
    async with serve_control() as srv:
        client = ControlClient(srv.path)
        async with client:
            stream = client.events(stats_interval_s=0)
            first = await anext(stream)
            assert first.kind is EventKind.HELLO

            async def drain() -> int:
                return len([e async for e in stream])

            task = asyncio.create_task(drain())
            await asyncio.sleep(0)  # one loop turn, not a wait: drain() is now reading
            # Leaving serve_control's block runs runner.cleanup (on_shutdown sets closing).
            await srv.app.shutdown()
            assert await asyncio.wait_for(task, 5) == 0


async def test_bad_bodies_are_400_with_a_message() -> None:
    async with serve_control() as srv:
        connector = aiohttp.UnixConnector(path=str(srv.path))
        async with aiohttp.ClientSession(connector=connector) as session:
            r1 = await session.post("http://qwend/v1/promotions", data=b"{not json")
            r2 = await session.post("http://qwend/v1/promotions", json={"wait": True})
            r3 = await session.post("http://qwend/v1/lanes/stable/explode")
            r4 = await session.get("http://qwend/v1/nothing")
            bodies = [await r.json() for r in (r1, r2, r3, r4)]
    assert [r.status for r in (r1, r2, r3, r4)] == [400, 400, 400, 404]
    assert bodies[0] == {"code": "bad_request", "message": "request body is not JSON"}
    assert "missing field 'lane'" in bodies[1]["message"]
    assert "use one of start, stop, restart, drain, reset" in bodies[2]["message"]
    assert bodies[3]["code"] == "not_found"


async def test_deeply_nested_bodies_are_400_not_an_internal_error() -> None:
    with capture_logs() as logs:
        bodies = await post_nested_promotions()
    for doc in bodies:
        assert doc["code"] == "bad_request"
        assert "levels deep" in doc["message"]
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []


async def post_nested_promotions() -> list[dict[str, str]]:
    async with serve_control() as srv:
        connector = aiohttp.UnixConnector(path=str(srv.path))
        async with aiohttp.ClientSession(connector=connector) as session:
            bodies = []
            for depth in (200, 100_000):
                body = b'{"lane": ' + b"[" * depth + b"]" * depth + b"}"
                async with session.post("http://qwend/v1/promotions", data=body) as r:
                    assert r.status == 400
                    bodies.append(await r.json())
    return bodies
