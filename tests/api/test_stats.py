"""The stats stream's frames and deltas: a client applying deltas holds the daemon's frame."""

from __future__ import annotations

import dataclasses

from qwend.api.messages import LaneInfo, LaneStats, PromotionAccepted, PromotionMode
from qwend.api.stats import (
    ClassSample,
    NpuSample,
    StatsFrame,
    StatsUpdate,
    apply_update,
    diff_frames,
    full_update,
    steady_lane,
)


def lane(name: str, state: str = "ready", in_flight: int = 0, **kw: object) -> LaneInfo:
    return LaneInfo(
        name=name,
        role="stable",
        variant="v3",
        state=state,
        active=name == "a",
        standby=False,
        stats=LaneStats(in_flight=in_flight, ttft_p50_ms=100.0),
        **kw,  # type: ignore[arg-type]
    )


def frame(at: float, *lanes: LaneInfo, **kw: object) -> StatsFrame:
    return StatsFrame(at=at, started_at=1.0, lanes=lanes, active={"stable": "a"}, **kw)  # type: ignore[arg-type]


CHIP = NpuSample(npu=3, chip=0, name="910A", health="OK", aicore_pct=40, hbm_used_mb=1000,
                 hbm_total_mb=32768, lanes=("a",))  # fmt: skip


def test_a_delta_carries_only_what_changed() -> None:
    old = frame(10.0, lane("a"), lane("b"), npus=(CHIP,))
    new = frame(11.0, lane("a", in_flight=3), lane("b"), npus=(CHIP,))
    update = diff_frames(5, old, new)
    assert [x.name for x in update.lanes] == ["a"]
    assert update.order is None and update.active is None and update.npus == ()
    assert apply_update(old, update) == new


def test_an_unchanged_frame_is_a_heartbeat() -> None:
    old = frame(10.0, lane("a"))
    update = diff_frames(6, old, dataclasses.replace(old, at=12.0))
    assert update.empty
    assert len(str(update.to_dict())) < 400  # a heartbeat is small whatever the lane count
    assert apply_update(old, update).at == 12.0


def test_lanes_removed_reordered_and_roles_switched_round_trip() -> None:
    running = PromotionAccepted("p1", "stable", "a", "c", PromotionMode.BLUE_GREEN)
    old = frame(10.0, lane("a"), lane("b"), classes=(ClassSample("short_text", 3),))
    new = StatsFrame(
        at=11.0,
        started_at=1.0,
        lanes=(lane("c", "starting"), lane("a", "draining")),
        active={"stable": "c"},
        classes=(ClassSample("short_text", 5), ClassSample("long_text", 1)),
        npus=(CHIP, dataclasses.replace(CHIP, chip=1)),
        npu_note="NPU reading is stale",
        promotions=(running,),
    )
    update = diff_frames(7, old, new)
    assert update.order == ("c", "a")
    assert update.active == {"stable": "c"}
    again = StatsUpdate.from_dict(update.to_dict())  # as it crosses the socket
    assert apply_update(old, again) == new
    # Back again: the promotion ends, the chip goes away.
    assert apply_update(new, diff_frames(8, new, old)).promotions == ()
    assert apply_update(new, diff_frames(8, new, old)) == old


def test_a_full_update_needs_no_previous_frame() -> None:
    new = frame(10.0, lane("a"), npus=(CHIP,))
    update = full_update(0, new)
    assert update.full and not update.empty
    assert apply_update(None, update) == new
    assert apply_update(frame(3.0, lane("zzz")), update) == new


def test_uptime_is_left_out_so_a_running_lane_is_steady() -> None:
    ticking = lane("a", uptime_s=12.5, started_at=100.0)
    assert steady_lane(ticking).uptime_s is None
    assert steady_lane(ticking).started_at == 100.0
    assert steady_lane(dataclasses.replace(ticking, uptime_s=13.5)) == steady_lane(ticking)
