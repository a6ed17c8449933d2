"""Re-adopting lanes a previous daemon left (pure): the decision and the record file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qwend.config.model import LaneConfig
from qwend.supervisor.adoption import (
    AdoptionError,
    LaneRecord,
    ProcFacts,
    Verdict,
    decide,
    dumps_records,
    lane_digest,
    loads_records,
    start_ticks_of,
)
from tests.support.lanescripts.factory import make_lane

LANE = make_lane("a", port=18001)
RECORD = LaneRecord("a", pid=4242, start_ticks=987654, port=18001, digest=lane_digest(LANE))
SAME = ProcFacts(start_ticks=987654, pgid=4242)


def test_the_very_process_configured_the_same_is_adopted() -> None:
    assert decide(RECORD, LANE, SAME).verdict is Verdict.ADOPT


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        (ProcFacts(None), "gone"),
        (ProcFacts(start_ticks=987655, pgid=4242), "another process"),
        (ProcFacts(start_ticks=987654, pgid=1), "process group"),
    ],
)
def test_a_gone_or_recycled_pid_is_forgotten_untouched(facts: ProcFacts, why: str) -> None:
    decision = decide(RECORD, LANE, facts)
    assert decision.verdict is Verdict.FORGET
    assert why in decision.reason


def test_a_recycled_pid_is_never_stopped_even_when_the_lane_is_gone() -> None:
    assert decide(RECORD, None, ProcFacts(start_ticks=1, pgid=4242)).verdict is Verdict.FORGET


@pytest.mark.parametrize(
    "lane",
    [
        None,
        replace(LANE, env={"CHANGED": "yes"}),
        replace(LANE, port=18002),
        replace(LANE, npus=(3,)),
        replace(LANE, command=("other",)),
    ],
)
def test_a_lane_removed_or_changed_while_down_is_stopped(lane: LaneConfig | None) -> None:
    decision = decide(RECORD, lane, SAME)
    assert decision.verdict is Verdict.STOP


def test_settings_that_need_no_restart_keep_the_digest() -> None:
    relaxed = replace(LANE, standby=True, health=replace(LANE.health, interval_s=9.0))
    assert lane_digest(relaxed) == RECORD.digest
    assert decide(RECORD, relaxed, SAME).verdict is Verdict.ADOPT


def test_with_survival_off_the_lanes_left_are_stopped() -> None:
    decision = decide(RECORD, LANE, SAME, survive=False)
    assert decision.verdict is Verdict.STOP
    assert "lanes_survive_restart" in decision.reason


def test_start_ticks_and_group_come_from_proc_stat() -> None:
    # A command with spaces and parentheses: fields are counted after the last ')'.
    rest = ["S", "1", "4242", "4242"] + ["0"] * 15 + ["987654", "123"]
    stat = "4242 (vllm (serve) x) " + " ".join(rest)
    assert start_ticks_of(stat) == (987654, 4242)
    assert start_ticks_of(stat.replace(") S ", ") Z ")) is None
    assert start_ticks_of("garbage") is None


def test_records_round_trip() -> None:
    other = LaneRecord("b", pid=7, start_ticks=0, port=18002, digest="d")
    assert loads_records(dumps_records([RECORD, other]), "x") == (RECORD, other)
    assert loads_records("", "x") == ()


@pytest.mark.parametrize(
    "text",
    [
        "lanes = 3",
        "[lanes.a]\npid = 1\nstart_ticks = 2\nport = 3",
        "[lanes.a]\npid = -1\nstart_ticks = 2\nport = 3\ndigest = 'x'",
        "[lanes.a]\npid = true\nstart_ticks = 2\nport = 3\ndigest = 'x'",
        "[lanes.a]\npid = 1\nstart_ticks = 2\nport = 3\ndigest = 4",
        "[lanes\n",
    ],
)
def test_a_corrupt_record_file_is_an_error_naming_it(text: str) -> None:
    with pytest.raises(AdoptionError, match=r"/var/lib/qwend/lanes\.toml"):
        loads_records(text, "/var/lib/qwend/lanes.toml")
