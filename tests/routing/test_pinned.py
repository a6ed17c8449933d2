"""Lane choice for a ``role:NAME`` public endpoint: only the role's lanes, any capability."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qwend.config.model import TextPolicy
from qwend.routing.classify import RequestSummary
from qwend.routing.policy import choose
from tests.support.lane_view import LaneView

SHORT = RequestSummary(False, 20, 8, False)
LONG = RequestSummary(False, 20, 64, False)
IMAGE = RequestSummary(True, 300, 8, False)
ALL = list(TextPolicy)


def seed_lanes() -> list[LaneView]:
    """The seed topology as the shipped config has it: mm is image-only, text lanes text-only."""
    return [
        LaneView("mm", "multimodal", text=False, image=True),
        LaneView("stable", "stable"),
        LaneView("recurrent_v2", "stable", eligible=False, why_not="standby"),
        LaneView("throughput", "throughput"),
        LaneView("chunk_v2", "throughput", eligible=False, why_not="standby"),
    ]


def pinned(summary: RequestSummary, role: str) -> RequestSummary:
    return replace(summary, role=role)


@pytest.mark.parametrize("policy", ALL)
@pytest.mark.parametrize(
    ("role", "lane"), [("multimodal", "mm"), ("stable", "stable"), ("throughput", "throughput")]
)
def test_every_request_goes_to_the_roles_active_lane(
    policy: TextPolicy, role: str, lane: str
) -> None:
    for summary in (SHORT, LONG, IMAGE):
        decision = choose(pinned(summary, role), seed_lanes(), policy, long_text_min_tokens=32)
        assert decision.lane == lane, (summary, decision)
        assert not decision.spilled


def test_unpinned_text_never_reaches_an_image_only_lane() -> None:
    decision = choose(SHORT, seed_lanes(), TextPolicy.BALANCED_LONG_TEXT, long_text_min_tokens=32)
    assert decision.lane == "throughput"


def test_a_busy_pinned_lane_means_wait_not_another_role() -> None:
    lanes = [replace(v, in_flight=8) if v.name == "throughput" else v for v in seed_lanes()]
    decision = choose(
        pinned(SHORT, "throughput"), lanes, TextPolicy.LEAST_WORK, long_text_min_tokens=32
    )
    assert decision.lane is None
    assert decision.wait


def test_a_draining_pinned_lane_is_refused_with_its_state() -> None:
    lanes = [
        replace(v, eligible=False, why_not="not accepting (starting, draining or unhealthy)")
        if v.name == "throughput"
        else v
        for v in seed_lanes()
    ]
    decision = choose(
        pinned(LONG, "throughput"), lanes, TextPolicy.BALANCED_LONG_TEXT, long_text_min_tokens=32
    )
    assert decision.lane is None
    assert not decision.wait
    assert "role 'throughput'" in decision.message
    assert "throughput: not accepting" in decision.message
    assert "chunk_v2: standby" in decision.message
    assert "stable" not in decision.message
    assert "mm:" not in decision.message


def test_a_role_without_lanes_says_so() -> None:
    decision = choose(
        pinned(SHORT, "stable"),
        [LaneView("fast", "throughput")],
        TextPolicy.BALANCED_LONG_TEXT,
        long_text_min_tokens=32,
    )
    assert decision.lane is None
    assert not decision.wait
    assert decision.message == "no lane of role 'stable' is routable; retry later"


def test_retry_excludes_the_tried_lane_even_when_pinned() -> None:
    lanes = [LaneView("a", "throughput"), LaneView("b", "throughput")]
    first = choose(
        pinned(SHORT, "throughput"), lanes, TextPolicy.ROUND_ROBIN, long_text_min_tokens=32
    )
    assert first.lane == "a"
    again = choose(
        pinned(SHORT, "throughput"),
        lanes,
        TextPolicy.ROUND_ROBIN,
        long_text_min_tokens=32,
        exclude=frozenset({"a"}),
    )
    assert again.lane == "b"
