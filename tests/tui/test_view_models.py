"""The TUI's pure parts: rows, sort, filter, impact texts, histories, promotion tracking."""

from __future__ import annotations

import pytest

from qwen_tui.actions import Action, all_keys, impact, lane_actions
from qwen_tui.backoff import Backoff
from qwen_tui.history import History, bar, level_style, sparkline
from qwen_tui.promotion import Promotions
from qwen_tui.rows import (
    LANE_COLUMNS,
    filter_rows,
    lane_row,
    lane_rows,
    latency,
    reason,
    role_lines,
    sort_rows,
)
from qwen_tui.screens.promotion import gate_text
from qwend.api.describe import gate_line
from qwend.api.messages import (
    GateResult,
    LaneInfo,
    LaneStats,
    PromotionAccepted,
    PromotionEvent,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
    PromotionStep,
)
from qwend.api.stats import ClassSample, NpuSample, StatsFrame


def lane(name: str, role: str, state: str = "ready", **kw: object) -> LaneInfo:
    defaults: dict[str, object] = {"active": False, "standby": False, "variant": "v3"}
    defaults.update(kw)
    return LaneInfo(name=name, role=role, state=state, **defaults)  # type: ignore[arg-type]


STABLE = lane(
    "stable",
    "stable",
    active=True,
    npus=(1,),
    port=18102,
    stats=LaneStats(in_flight=2, requests=10, ttft_p50_ms=120.0, e2e_p95_ms=10325.0),
)
CANDIDATE = lane("recurrent_v2", "stable", "stopped", npus=(1,), port=18104)
GREEN = lane("stable_green", "stable", "stopped", npus=(4,), port=18105)
TP = lane("throughput", "throughput", "backoff", active=True, npus=(2, 3), restarts=3,
          last_exit="signal SIGKILL", reason="crash loop: 3 exits in 60 s")  # fmt: skip
FRAME = StatsFrame(at=1000.0, started_at=0.0, lanes=(STABLE, CANDIDATE, GREEN, TP),
                   active={"stable": "stable", "throughput": "throughput"})  # fmt: skip


def test_latencies_cannot_be_misread() -> None:
    assert latency(412.4) == "412 ms"
    assert latency(3190.0) == "3.19 s"
    assert latency(10325.0) == "10.3 s"
    assert latency(63000.0) == "1m03s"
    assert latency(None) == "-"


def test_reason_column_prefers_qwends_error_then_the_state_reason_then_the_exit() -> None:
    assert reason(TP) == "crash loop: 3 exits in 60 s"
    assert reason(lane("a", "r", "failed", last_exit="exit 1")) == "last exit: exit 1"
    assert reason(lane("a", "r", "ready", last_exit="exit 1")) == ""
    assert reason(lane("a", "r", "backoff", last_error="port 18102 in use", reason="x")) == (
        "port 18102 in use"
    )
    assert reason(lane("a", "r", last_error="x" * 100)).endswith("…")


def test_uptime_comes_from_the_start_time_and_the_frame_clock() -> None:
    row = lane_row(lane("a", "r", started_at=875.0), now=1000.0)
    assert dict(zip(LANE_COLUMNS, row.cells, strict=True))["up"] == "2m05s"


@pytest.mark.parametrize(
    ("column", "reverse", "order"),
    [
        (None, False, ["stable", "recurrent_v2", "stable_green", "throughput"]),
        ("lane", False, ["recurrent_v2", "stable", "stable_green", "throughput"]),
        ("e2e p95", False, ["stable", "recurrent_v2", "stable_green", "throughput"]),
        ("restarts", True, ["throughput", "recurrent_v2", "stable", "stable_green"]),
        ("port", True, ["stable_green", "recurrent_v2", "stable", "throughput"]),
    ],
)
def test_sort_by_any_column_with_missing_values_last(
    column: str | None, reverse: bool, order: list[str]
) -> None:
    rows = sort_rows(lane_rows(FRAME.lanes), column, reverse)
    assert [r.key for r in rows] == order


def test_every_column_sorts() -> None:
    rows = lane_rows(FRAME.lanes)
    for column in LANE_COLUMNS:
        assert sorted(r.key for r in sort_rows(rows, column)) == sorted(r.key for r in rows)


def test_filter_matches_every_word_anywhere() -> None:
    rows = lane_rows(FRAME.lanes)
    assert [r.key for r in filter_rows(rows, "stable stopped")] == ["recurrent_v2", "stable_green"]
    assert [r.key for r in filter_rows(rows, "CRASH")] == ["throughput"]
    assert filter_rows(rows, "  ") == rows
    assert filter_rows(rows, "nothing-like-this") == []


def test_stop_of_an_active_lane_names_the_role_and_the_cut_requests() -> None:
    what = impact(Action.STOP, FRAME, "stable")
    assert what.disruptive
    assert "role stable loses its lane" in what.lines[0]
    assert "2 requests in flight on stable: drained first" in what.lines[1]
    idle = impact(Action.STOP, FRAME, "recurrent_v2")
    assert not idle.disruptive and "serves no traffic" in idle.lines[0]


def test_promotion_impact_says_in_place_or_blue_green() -> None:
    in_place = " ".join(impact(Action.PROMOTE, FRAME, "recurrent_v2").lines)
    assert "in place" in in_place and "role stable has NO lane" in in_place
    assert "2 requests in flight on stable" in in_place
    blue_green = " ".join(impact(Action.PROMOTE, FRAME, "stable_green").lines)
    assert "blue/green" in blue_green and "switches from stable to stable_green" in blue_green
    assert "already the active lane" in impact(Action.PROMOTE, FRAME, "stable").lines[0]


def test_every_action_has_an_impact_a_key_and_a_palette_entry() -> None:
    keys = {k.key for k in all_keys()}
    assert len(keys) == len(all_keys())  # no key bound twice
    for action in Action:
        what = impact(action, FRAME, "stable")
        assert what.title and what.lines
        assert action in lane_actions(STABLE) or action is Action.PROMOTE
    assert impact(Action.STOP, None, "gone").lines == ("lane gone is not known to qwend right now",)
    assert "2 requests in flight" in impact(Action.RELOAD, FRAME, None).lines[1]


def test_role_map_shows_a_running_promotion() -> None:
    running = PromotionAccepted("p1", "stable", "stable", "stable_green", PromotionMode.BLUE_GREEN)
    frame = StatsFrame(at=1.0, lanes=FRAME.lanes, active=FRAME.active, promotions=(running,))
    lines = {line.role: line for line in role_lines(frame)}
    assert lines["stable"].promotion == running
    assert lines["throughput"].state == "backoff" and lines["throughput"].promotion is None


def test_sparklines_bars_and_colours() -> None:
    assert sparkline([0.0, 50.0, 100.0], 3) == "▁▅█"
    assert sparkline([None, 10.0], 4) == "   █"
    assert sparkline([50.0], 1, top=100.0) == "▅"
    assert sparkline([], 3) == "   "
    assert bar(0.5, 4) == "██░░" and bar(None, 3) == "···" and bar(2.0, 2) == "██"
    assert (level_style(50), level_style(85), level_style(97)) == ("green", "yellow", "bold red")


def test_history_turns_counters_into_rates_and_stays_bounded() -> None:
    history = History(size=5)
    chip = NpuSample(npu=0, chip=0, aicore_pct=40, hbm_used_mb=8, hbm_total_mb=32)
    for i in range(8):
        stats = LaneStats(requests=10 * i, errors=i // 2, ttft_p50_ms=100.0 + i)
        history.add(
            StatsFrame(
                at=float(i),
                lanes=(lane("a", "r", stats=stats),),
                classes=(ClassSample("short_text", requests=5 * i),),
                npus=(chip,),
            )
        )
    assert list(history.series("lane:a", "req_s")) == [10.0] * 5
    assert list(history.series("class:short_text", "req_s")) == [5.0] * 5
    assert history.latest("lane:a", "ttft") == 107.0
    assert history.latest("npu:0.0", "hbm_pct") == 25.0
    # A lane that restarts its counters is a zero rate, not a negative one.
    history.add(StatsFrame(at=9.0, lanes=(lane("a", "r", stats=LaneStats(requests=1)),)))
    assert history.latest("lane:a", "req_s") == 0.0


def test_a_promotion_seen_on_two_streams_is_news_once() -> None:
    promotions = Promotions()
    accepted = PromotionAccepted("p1", "stable", "stable", "rv2", PromotionMode.IN_PLACE)
    step = PromotionEvent("p1", "stable", "stable", PromotionStep.DRAINING, "draining", 10.0)
    record = PromotionRecord("p1", "stable", "stable", "rv2", PromotionMode.IN_PLACE,
                             PromotionOutcome.PROMOTED, 10.0, 14.5)  # fmt: skip
    news = [promotions.feed(x) for x in (accepted, step, accepted, step, record, record)]
    assert news == [True, True, False, False, True, False]
    progress = promotions.latest
    assert progress is not None and progress.ok and progress.elapsed(99.0) == 4.5
    assert "in place" in progress.headline()
    # First seen mid-way (the TUI started late): still followed.
    late = PromotionEvent("p2", "tp", "tp2", PromotionStep.STARTING, "starting", 20.0)
    assert promotions.feed(late)
    assert promotions.get("p2") is not None and promotions.latest is promotions.get("p2")


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    backoff = Backoff(first=0.5, cap=2.0)
    assert [backoff.failed() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    backoff.succeeded()
    assert backoff.failed() == 0.5


def test_the_promotion_view_shows_the_gate_verdict_and_the_candidates_last_output() -> None:
    gate = GateResult(scenario="text_32", incumbent="stable", candidate="rv2", accepted=False,
                      reason="slower", max_regression=0.05, incumbent_wall_s=3.2,
                      candidate_wall_s=3.9, ratio=1.21, ratio_low=1.12, ratio_high=1.3,
                      samples=12)  # fmt: skip
    record = PromotionRecord("p9", "stable", "stable", "rv2", PromotionMode.BLUE_GREEN,
                             PromotionOutcome.REFUSED, 1.0, 30.0, reason="gate refused",
                             gate=gate, log_tail=("loading weights", "ready"))  # fmt: skip
    promotions = Promotions()
    promotions.feed(PromotionAccepted("p9", "stable", "stable", "rv2", PromotionMode.BLUE_GREEN))
    assert "none on this promotion" in gate_text(promotions.latest).plain
    promotions.feed(PromotionEvent("p9", "stable", "rv2", PromotionStep.BENCHMARKING, "b", 2.0))
    assert gate_text(promotions.latest).plain == "latency gate: measuring…"
    promotions.feed(record)
    shown = gate_text(promotions.latest).plain
    assert gate_line(gate) in shown and "refused" in shown
    assert shown.endswith("last output of rv2:\nloading weights\nready")
    progress = promotions.latest
    assert progress is not None and not progress.ok  # refused: no rollback offered


def test_the_lane_table_marks_a_remote_lane_and_shows_its_url() -> None:
    pid_column = LANE_COLUMNS.index("pid")
    far = lane_row(lane("far", "stable", url="https://gpu-b:8000"))
    near = lane_row(lane("near", "stable", pid=77))
    assert far.cells[pid_column] == "remote https://gpu-b:8000"
    assert near.cells[pid_column] == "77"
