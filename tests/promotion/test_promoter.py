"""Promoter against a fake supervisor: step order, rollback, conflicts, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qwend.api.messages import (
    Caller,
    PromotionEvent,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
    PromotionStep,
)
from qwend.errors import PromotionConflict, PromotionError
from qwend.promotion.promoter import Promoter, Promotion
from qwend.promotion.state import StateStore
from tests.support.control_fakes import FakeMonitor, FakeSupervisor, FakeTraffic, demo_config
from tests.support.polling import until

CALLER = Caller(uid=1000, pid=4242, user="op")


async def collect(promotion: Promotion) -> tuple[list[PromotionEvent], PromotionRecord]:
    events: list[PromotionEvent] = []
    async for item in promotion.progress():
        if isinstance(item, PromotionRecord):
            return events, item
        events.append(item)
    raise AssertionError("stream ended without a record")


def steps(events: list[PromotionEvent]) -> list[tuple[str, str]]:
    return [(e.lane, e.step.value) for e in events]


async def test_in_place_drains_stops_checks_npus_starts_then_switches(tmp_path: Path) -> None:
    sup = FakeSupervisor(demo_config())
    traffic = FakeTraffic()
    monitor = FakeMonitor()
    promoter = Promoter(sup, traffic, StateStore(tmp_path), monitor)
    promotion = promoter.start("recurrent_v2", CALLER)
    assert promotion.accepted.mode is PromotionMode.IN_PLACE
    events, record = await collect(promotion)
    assert record.outcome is PromotionOutcome.PROMOTED
    assert record.requested_by == CALLER
    assert sup.calls == [
        ("hold", "stable"),  # requests for the role wait while it has no ready lane
        ("drain", "stable"),
        ("stop", "stable"),
        ("start", "recurrent_v2"),
        ("wait_ready", "recurrent_v2"),
        ("set_active", "recurrent_v2"),
        ("unhold", "stable"),
    ]
    assert steps(events) == [
        ("recurrent_v2", "planned"),
        ("stable", "draining"),
        ("stable", "drained"),
        ("stable", "stopping"),
        ("stable", "stopped"),
        ("recurrent_v2", "waiting_npus"),
        ("recurrent_v2", "starting"),
        ("recurrent_v2", "ready"),
        ("recurrent_v2", "switched"),
        ("recurrent_v2", "finished"),
    ]
    assert traffic.waited == ["stable"]
    assert monitor.checked == ["recurrent_v2"]
    assert sup.active["stable"] == "recurrent_v2"
    state = StateStore(tmp_path).load()
    assert state.active["stable"] == "recurrent_v2"
    assert state.history[-1].id == record.id
    assert promoter.running() == ()


async def test_blue_green_starts_candidate_switches_then_stops_old() -> None:
    sup = FakeSupervisor(demo_config())
    promoter = Promoter(sup, FakeTraffic(), None)
    promotion = promoter.start("stable_green", CALLER)
    events, record = await collect(promotion)
    assert record.mode is PromotionMode.BLUE_GREEN
    assert record.outcome is PromotionOutcome.PROMOTED
    assert sup.calls == [
        ("start", "stable_green"),
        ("wait_ready", "stable_green"),
        ("set_active", "stable_green"),
        ("drain", "stable"),
        ("stop", "stable"),
    ]
    assert sup.states["stable"] == "stopped"
    assert ("stable_green", "switched") in steps(events)


async def test_in_place_candidate_crash_restarts_incumbent(tmp_path: Path) -> None:
    sup = FakeSupervisor(demo_config(), crashing={"recurrent_v2"})
    promoter = Promoter(sup, FakeTraffic(), StateStore(tmp_path))
    events, record = await collect(promoter.start("recurrent_v2", CALLER))
    assert record.outcome is PromotionOutcome.ROLLED_BACK
    assert record.reason is not None and "exited with status 1" in record.reason
    assert sup.calls[-6:] == [
        ("wait_ready", "recurrent_v2"),
        ("stop", "recurrent_v2"),
        ("start", "stable"),
        ("wait_ready", "stable"),
        ("set_active", "stable"),
        ("unhold", "stable"),
    ]
    assert sup.active["stable"] == "stable"
    assert sup.states == sup.states | {"stable": "ready", "recurrent_v2": "stopped"}
    # the candidate's own words are in the result
    assert record.log_tail == tuple(f"recurrent_v2 line {i}" for i in range(5))
    assert ("recurrent_v2", "rolling_back") in steps(events)
    history = StateStore(tmp_path).load().history
    assert history[-1].outcome is PromotionOutcome.ROLLED_BACK


async def test_blue_green_candidate_crash_leaves_incumbent_untouched() -> None:
    sup = FakeSupervisor(demo_config(), crashing={"stable_green"})
    promoter = Promoter(sup, FakeTraffic(), None)
    _, record = await collect(promoter.start("stable_green", CALLER))
    assert record.outcome is PromotionOutcome.ROLLED_BACK
    assert ("drain", "stable") not in sup.calls
    assert sup.states["stable"] == "ready"
    assert sup.states["stable_green"] == "stopped"


async def test_incumbent_failing_to_come_back_is_failed() -> None:
    sup = FakeSupervisor(demo_config(), crashing={"recurrent_v2", "stable"})
    promoter = Promoter(sup, FakeTraffic(), None)
    _, record = await collect(promoter.start("recurrent_v2", CALLER))
    assert record.outcome is PromotionOutcome.FAILED
    assert record.reason is not None and "restoring stable failed too" in record.reason


async def test_busy_npus_roll_back_before_starting_candidate() -> None:
    sup = FakeSupervisor(demo_config())
    promoter = Promoter(sup, FakeTraffic(), None, FakeMonitor(busy=True))
    _, record = await collect(promoter.start("recurrent_v2", CALLER))
    assert record.outcome is PromotionOutcome.ROLLED_BACK
    assert record.reason is not None and "still held by pid 999" in record.reason
    assert ("start", "recurrent_v2") not in sup.calls


async def test_drain_timeout_is_reported_and_promotion_continues() -> None:
    sup = FakeSupervisor(demo_config())
    promoter = Promoter(sup, FakeTraffic(drained=False), None, drain_timeout_s=0.5)
    events, record = await collect(promoter.start("recurrent_v2", CALLER))
    assert record.outcome is PromotionOutcome.PROMOTED
    drained = next(e for e in events if e.step is PromotionStep.DRAINED)
    assert "timed out after 0.5s with 2 in flight" in drained.message


async def test_second_promotion_of_same_role_conflicts_other_roles_do_not() -> None:
    sup = FakeSupervisor(demo_config())
    sup.ready_gate = asyncio.Event()
    promoter = Promoter(sup, FakeTraffic(), None)
    first = promoter.start("recurrent_v2", CALLER)
    with pytest.raises(PromotionConflict, match="already running"):
        promoter.start("stable_green", CALLER)
    assert [p.to_lane for p in promoter.running()] == ["recurrent_v2"]
    sup.ready_gate.set()
    record = await first.result()
    assert record.outcome is PromotionOutcome.PROMOTED
    again = promoter.start("stable_green", CALLER)
    assert (await again.result()).outcome is PromotionOutcome.PROMOTED


async def test_late_subscriber_gets_full_replay_and_global_subscriber_sees_all() -> None:
    sup = FakeSupervisor(demo_config())
    promoter = Promoter(sup, FakeTraffic(), None)
    everything = promoter.subscribe()
    promotion = promoter.start("stable_green", None)
    record = await promotion.result()
    events, again = await collect(promotion)
    assert again == record
    assert events[0].step is PromotionStep.PLANNED
    seen = [await anext(everything) for _ in range(len(everything))]
    assert seen[-1] == record
    assert len(seen) == len(events) + 1


async def test_rollback_reverts_last_promotion_and_persists(tmp_path: Path) -> None:
    sup = FakeSupervisor(demo_config())
    promoter = Promoter(sup, FakeTraffic(), StateStore(tmp_path))
    await promoter.start("recurrent_v2", CALLER).result()
    back = promoter.rollback("stable", CALLER)
    assert back.accepted.to_lane == "stable"
    record = await back.result()
    assert record.kind == "rollback"
    assert record.outcome is PromotionOutcome.PROMOTED
    assert sup.active["stable"] == "stable"
    store = StateStore(tmp_path)
    store.load()
    assert store.state.active["stable"] == "stable"
    # A fresh promoter (daemon restart) knows the history: the rollback itself can be reverted.
    again = Promoter(sup, FakeTraffic(), store)
    assert again.rollback("stable", CALLER).accepted.to_lane == "recurrent_v2"


async def test_rollback_without_history_is_refused() -> None:
    promoter = Promoter(FakeSupervisor(demo_config()), FakeTraffic(), None)
    with pytest.raises(PromotionError, match="no promotion of role 'stable'"):
        promoter.rollback("stable", CALLER)


async def test_failed_candidate_is_reset_before_start() -> None:
    sup = FakeSupervisor(demo_config()).with_state("stable_green", "failed")
    promoter = Promoter(sup, FakeTraffic(), None)
    record = await promoter.start("stable_green", CALLER).result()
    assert record.outcome is PromotionOutcome.PROMOTED
    assert ("reset", "stable_green") in sup.calls


async def test_ready_timeout_override_reaches_wait_ready() -> None:
    sup = FakeSupervisor(demo_config())
    promoter = Promoter(sup, FakeTraffic(), None)
    events, _ = await collect(promoter.start("stable_green", CALLER, ready_timeout_s=7))
    starting = next(e for e in events if e.step is PromotionStep.STARTING)
    assert "waiting up to 7s" in starting.message


async def test_aclose_cancels_running_promotion_and_refuses_new_ones(tmp_path: Path) -> None:
    sup = FakeSupervisor(demo_config())
    sup.ready_gate = asyncio.Event()
    store = StateStore(tmp_path)
    promoter = Promoter(sup, FakeTraffic(), store)
    promotion = promoter.start("recurrent_v2", CALLER)
    await until(lambda: ("wait_ready", "recurrent_v2") in sup.calls, what="the candidate start")
    await promoter.aclose()
    assert promotion.task is not None and promotion.task.cancelled()
    assert promoter.running() == ()
    assert not (tmp_path / "state.toml").exists()
    with pytest.raises(PromotionError, match="shutting down"):
        promoter.start("stable_green", CALLER)
