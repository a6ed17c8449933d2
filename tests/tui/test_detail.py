"""The lane detail view: config, state, graphs, last promotion with its gate, last bench."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Static

from qwen_tui.app import QwenTui
from qwen_tui.commands import QwendCommands
from qwen_tui.detail import detail_text as detail_view
from qwen_tui.detail import last_promotion, promotion_lines
from qwen_tui.history import History
from qwen_tui.lastbench import about_lane, bench_lines, last_bench, summarise
from qwen_tui.screens.confirm import ConfirmScreen
from qwen_tui.screens.detail import DetailScreen
from qwend.api.messages import (
    GateResult,
    LaneInfo,
    PromotionAccepted,
    PromotionMode,
    PromotionOutcome,
    PromotionRecord,
)
from qwend.bench.results import BenchResult, CaseRun, Metadata, RequestRecord
from qwend.bench.store import save
from tests.bench.test_daemon_bench import qwenctl, seed_lanes
from tests.promotion.test_e2e import BASE_READY, monitor_table
from tests.support.control_fakes import FakeSupervisor, demo_config, serve_control
from tests.support.daemonproc import run_daemon, write_config
from tests.tui.test_app import lanes_table, select, wait_for


def _record(e2e: float, lane: str = "", ok: bool = True) -> RequestRecord:
    return RequestRecord(
        start_s=0.0, ok=ok, e2e_s=e2e, ttft_s=e2e / 4, output_tokens=10, prompt_tokens=20,
        lane=lane, kind="text_32", error="" if ok else "HTTP 503: busy",
    )  # fmt: skip


def bench(rid: str, target: str, started: float, records: list[RequestRecord]) -> BenchResult:
    meta = Metadata(
        target=target, url="http://127.0.0.1:1", started_at=started, qwend_version="0.1.0",
        host="h", model="qwen", lanes={"stable": "chunk_v2", "multimodal": "baseline"},
    )  # fmt: skip
    return BenchResult(rid, meta, (CaseRun("short_text", 0, 2.0, tuple(records)),))


def test_a_routed_bench_counts_only_the_requests_the_lane_answered() -> None:
    routed = bench("r1", "router", 10.0, [_record(1.0, "stable"), _record(3.0, "multimodal")])
    assert about_lane(routed, "stable") and not about_lane(routed, "throughput")
    mine = summarise(routed, "stable")
    assert mine.attributed and mine.variant == "chunk_v2"
    (case,) = mine.cases
    assert (case.completed, case.e2e_p50_s, case.ttft_p50_s) == (1, 1.0, 0.25)
    # A bench aimed at the lane counts all of its requests, failures too.
    direct = bench("d1", "lane:stable", 20.0, [_record(1.0), _record(2.0, ok=False)])
    assert about_lane(direct, "stable")
    (case,) = summarise(direct, "stable").cases
    assert (case.completed, case.failed) == (1, 1)


def test_the_newest_bench_about_the_lane_wins(tmp_path: Path) -> None:
    save(tmp_path, bench("old", "lane:stable", 10.0, [_record(1.0)]))
    save(tmp_path, bench("new", "router", 30.0, [_record(1.5, "stable")]))
    save(tmp_path, bench("other", "lane:multimodal", 40.0, [_record(2.0)]))
    (tmp_path / "broken.json").write_text("{not json")  # skipped, like qwenctl bench list
    found = last_bench(tmp_path, "stable")
    assert found is not None and found.id == "new"
    assert last_bench(tmp_path, "throughput") is None
    assert last_bench(tmp_path / "missing", "stable") is None


def test_bench_lines_say_how_to_get_one_and_flag_another_variant() -> None:
    assert bench_lines(None, "stable", "v3") == ["no bench yet (qwenctl bench lane:stable)"]
    lines = bench_lines(summarise(bench("b", "lane:stable", 5.0, [_record(1.0)]), "stable"),
                        "stable", "v4")  # fmt: skip
    assert "measured on variant chunk_v2; the lane runs v4 now" in lines[1]
    assert "short_text" in lines[2] and "E2E p50 1.000s" in lines[2]


GATE = GateResult(
    scenario="short_text", incumbent="stable", candidate="stable_green", accepted=False,
    reason="E2E +40%", max_regression=0.1, incumbent_wall_s=1.0, candidate_wall_s=1.4,
    ratio=1.4, ratio_low=1.3, ratio_high=1.5, samples=16,
)  # fmt: skip


def _promo(pid: str, to: str, finished: float, gate: GateResult | None = None) -> PromotionRecord:
    return PromotionRecord(
        id=pid, role="stable", from_lane="stable", to_lane=to, mode=PromotionMode.BLUE_GREEN,
        outcome=PromotionOutcome.REFUSED if gate else PromotionOutcome.PROMOTED,
        started_at=finished - 5, finished_at=finished, reason="gate refused" if gate else None,
        gate=gate,
    )  # fmt: skip


def test_the_last_promotion_of_the_lane_with_its_gate_verdict() -> None:
    records = [_promo("a", "stable_green", 100.0, GATE), _promo("b", "recurrent_v2", 50.0)]
    found = last_promotion("stable", (), records)
    assert found is not None and found.id == "a"  # newest involving stable (as incumbent)
    lines = [line for line, _ in promotion_lines(found)]
    assert lines[1].startswith("gate refused: stable_green stopped")
    assert "E2E ratio 1.400" in lines[2] and lines[2].endswith("refused")
    assert last_promotion("throughput", (), records) is None
    running = PromotionAccepted(id="c", role="stable", from_lane="stable",
                                to_lane="stable_green", mode=PromotionMode.BLUE_GREEN)  # fmt: skip
    assert last_promotion("stable_green", (running,), records) == running
    assert promotion_lines(running)[0][0].startswith("running: role stable")
    assert "no latency gate" in [line for line, _ in promotion_lines(records[1])][2]


def lane_names(app: QwenTui) -> list[str]:
    return [str(key.value) for key in lanes_table(app).rows]


def detail_text(app: QwenTui) -> str:
    screen = app.screen
    assert isinstance(screen, DetailScreen)
    rendered = screen.query_one("#detail", Static).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


async def test_enter_opens_the_lane_with_its_last_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As qwenctl bench saves it: the TUI finds it through the same environment.
    monkeypatch.setenv("QWEND_BENCH_DIR", str(tmp_path))
    save(tmp_path, bench("b-old", "lane:stable", 10.0, [_record(9.0)]))
    save(tmp_path, bench("b-new", "lane:stable", 20.0, [_record(1.0), _record(1.2)]))
    async with serve_control(FakeSupervisor(demo_config())) as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            select(app, "stable")
            await pilot.press("enter")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, DetailScreen))
            await wait_for(pilot.pause, lambda: "bench b-new" in detail_text(app))
            text = detail_text(app)
            for expected in ("lane stable (active lane of stable)", "chunk_v2", "18102",
                             "TTFT p50", "E2E p50 1.100s", "ok 2"):  # fmt: skip
                assert expected in text, (expected, text)
            assert "b-old" not in text
            assert "no promotion involving this lane" in text
            await pilot.press("escape")
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)


async def test_the_detail_says_no_bench_yet_and_shows_the_last_promotion(
    tmp_path: Path,
) -> None:
    supervisor = FakeSupervisor(demo_config())
    async with serve_control(supervisor) as served:
        app = QwenTui(served.path, refresh_s=0.2, bench_dir=tmp_path / "none")
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            select(app, "stable_green")
            await pilot.press("p")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("right", "enter")
            await wait_for(pilot.pause, lambda: ("set_active", "stable_green") in supervisor.calls)
            await wait_for(pilot.pause, lambda: any(p.ok for p in app.promotions.all()))
            app.pop_screen()  # the promotion progress view
            await wait_for(pilot.pause, lambda: app.screen is app.dashboard)
            select(app, "stable_green")
            await pilot.press("i")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, DetailScreen))
            await wait_for(pilot.pause, lambda: "no bench yet" in detail_text(app))
            text = detail_text(app)
            assert "no bench yet (qwenctl bench lane:stable_green)" in text
            assert "promoted: stable_green now serves stable" in text
            assert "no latency gate on it" in text


async def test_the_palette_opens_any_lane() -> None:
    async with serve_control() as served:
        app = QwenTui(served.path, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            hits = [h async for h in QwendCommands(app.dashboard).discover()]
            show = next(h for h in hits if str(h.text) == "Show lane throughput")
            show.command()
            await wait_for(pilot.pause, lambda: isinstance(app.screen, DetailScreen))
            screen = app.screen
            assert isinstance(screen, DetailScreen) and screen.lane == "throughput"


@pytest.mark.slow
async def test_a_real_qwenctl_bench_shows_in_the_lanes_detail(
    tmp_path: Path, sim_state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # qwenctl bench against a real daemon on sim lanes saves the result; qwen-tui, run by
    # the same operator (same environment), finds it for that lane and not for another.
    results = tmp_path / "bench"
    monkeypatch.setenv("QWEND_BENCH_DIR", str(results))
    config = write_config(tmp_path / "etc", seed_lanes(), monitor=monitor_table())
    async with run_daemon(config, env={"QWEND_SIM_STATE_DIR": str(sim_state_dir)}) as daemon:
        await daemon.wait_lanes(BASE_READY)
        env = {"QWEND_SOCKET": str(daemon.control_socket), "QWEND_BENCH_DIR": str(results)}
        code, out, err = await qwenctl(
            env, "bench", "lane:stable", "--case", "text_8", "--time-scale", "20", "--json"
        )
        assert code == 0, err
        rid = json.loads(out)["id"]
        app = QwenTui(daemon.control_socket, refresh_s=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(
                pilot.pause, lambda: {"stable", "throughput"} <= set(lane_names(app)), 30
            )
            select(app, "stable")
            await pilot.press("enter")
            await wait_for(pilot.pause, lambda: f"bench {rid}" in detail_text(app), 30)
            line = next(x for x in detail_text(app).splitlines() if "text_8" in x)
            assert "fail 0" in line and "tok/s" in line, line
            await pilot.press("escape")
            select(app, "throughput")
            await pilot.press("enter")
            await wait_for(pilot.pause, lambda: "no bench yet" in detail_text(app), 30)


async def test_the_detail_view_greys_and_says_since_when_qwend_is_away() -> None:
    async with contextlib.AsyncExitStack() as stack:
        served = await stack.enter_async_context(serve_control())
        app = QwenTui(served.path, refresh_s=0.2, backoff_cap_s=0.5)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: lanes_table(app).row_count == 5)
            select(app, "stable")
            await pilot.press("i")
            await wait_for(pilot.pause, lambda: isinstance(app.screen, DetailScreen))
            screen = app.screen
            assert isinstance(screen, DetailScreen) and not screen.has_class("-stale")
            await stack.aclose()  # the daemon's control socket goes away
            await wait_for(pilot.pause, lambda: screen.has_class("-stale"), 30)
            title = screen.query_one("#detail-title", Static).render()
            assert "qwend unreachable since" in str(title)
            assert "lane stable (active lane of stable)" in detail_text(app)  # last values


def test_a_lane_on_a_group_says_so_and_whose_npus_it_uses() -> None:
    engine = LaneInfo(
        name="stable", role="stable", variant="v3", state="ready", active=True,
        standby=False, port=18084, runs_on="ray",
    )  # fmt: skip
    text = detail_view(engine, 0.0, History(), None, None, True).plain
    assert "on ray" in text, "its NPUs are the group's"
    assert "lane group ray (started once it is ready)" in text
    plain = LaneInfo(name="a", role="r", variant="v", state="ready", active=True, standby=False)
    assert "runs on" not in detail_view(plain, 0.0, History(), None, None, True).plain
