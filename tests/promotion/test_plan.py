"""Promotion planning (pure): mode, validity, rollback target."""

from __future__ import annotations

import pytest

from qwend.api.messages import PromotionMode, PromotionOutcome, PromotionRecord
from qwend.config.summary import render_summary
from qwend.errors import PromotionError
from qwend.promotion.plan import UnknownLane, plan_promotion, rollback_target
from qwend.supervisor.states import LaneState
from tests.support.control_fakes import demo_config, with_lane

CONFIG = demo_config()
ACTIVE = CONFIG.default_active()
S = LaneState
STATES = {"stable": S.READY, "recurrent_v2": S.STOPPED, "stable_green": S.STOPPED}


def test_shared_npus_mean_in_place() -> None:
    plan = plan_promotion(CONFIG, ACTIVE, "recurrent_v2", STATES)
    assert plan.mode is PromotionMode.IN_PLACE
    assert (plan.role, plan.incumbent, plan.candidate) == ("stable", "stable", "recurrent_v2")
    assert plan.incumbent_running and not plan.candidate_ready


def test_own_npus_mean_blue_green() -> None:
    plan = plan_promotion(CONFIG, ACTIVE, "stable_green", STATES)
    assert plan.mode is PromotionMode.BLUE_GREEN


def test_same_port_is_in_place_even_on_other_npus() -> None:
    config = with_lane(CONFIG, "stable_green", port=18102)
    assert plan_promotion(config, ACTIVE, "stable_green", STATES).mode is PromotionMode.IN_PLACE


def test_same_port_on_another_host_is_in_place() -> None:
    # lane.host is where qwend reaches the lane, not what its process binds: the ports clash.
    config = with_lane(CONFIG, "stable_green", port=18102, host="127.0.0.2")
    assert plan_promotion(config, ACTIVE, "stable_green", STATES).mode is PromotionMode.IN_PLACE


@pytest.mark.parametrize(
    "changes",
    [{}, {"npus": (1, 5)}, {"port": 18102}, {"port": 18102, "host": "127.0.0.2"},
     {"host": "127.0.0.2"}],
    ids=["own-npus-and-port", "shares-an-npu", "same-port", "same-port-other-host",
         "other-host"],
)  # fmt: skip
def test_plan_and_check_config_summary_agree(changes: dict[str, object]) -> None:
    config = with_lane(CONFIG, "stable_green", **changes)
    mode = plan_promotion(config, ACTIVE, "stable_green", STATES).mode
    kind = "in place" if mode is PromotionMode.IN_PLACE else "blue/green"
    assert f"stable_green ({kind})" in render_summary(config)


def test_candidate_already_ready_is_a_routing_switch() -> None:
    states = STATES | {"recurrent_v2": S.READY}
    plan = plan_promotion(CONFIG, ACTIVE, "recurrent_v2", states)
    assert plan.mode is PromotionMode.BLUE_GREEN
    assert plan.candidate_ready


@pytest.mark.parametrize("state", [S.STOPPED, S.STOPPING, S.FAILED])
def test_incumbent_not_running_is_noted(state: LaneState) -> None:
    plan = plan_promotion(CONFIG, ACTIVE, "recurrent_v2", STATES | {"stable": state})
    assert not plan.incumbent_running


def test_role_without_active_lane_is_blue_green_without_incumbent() -> None:
    active = {k: v for k, v in ACTIVE.items() if k != "stable"}
    plan = plan_promotion(CONFIG, active, "recurrent_v2", STATES)
    assert plan.incumbent is None
    assert plan.mode is PromotionMode.BLUE_GREEN


def test_unknown_lane_lists_known_ones() -> None:
    with pytest.raises(UnknownLane, match=r"no lane named 'nope' \(configured lanes: multimodal"):
        plan_promotion(CONFIG, ACTIVE, "nope", STATES)


def test_promoting_the_active_lane_is_refused() -> None:
    with pytest.raises(PromotionError, match="already the active lane of role 'stable'"):
        plan_promotion(CONFIG, ACTIVE, "stable", STATES)


def record(
    n: int,
    to: str,
    frm: str | None = "stable",
    outcome: PromotionOutcome = PromotionOutcome.PROMOTED,
) -> PromotionRecord:
    return PromotionRecord(
        f"p{n}", "stable", frm, to, PromotionMode.IN_PLACE, outcome, float(n), float(n)
    )


def test_rollback_target_is_the_last_successful_promotion() -> None:
    history = (
        record(1, "recurrent_v2"),
        record(2, "stable_green", "recurrent_v2"),
        record(3, "stable", "stable_green", PromotionOutcome.ROLLED_BACK),
    )
    target = rollback_target(history, "stable", {"stable": "stable_green"})
    assert target.id == "p2"
    assert target.from_lane == "recurrent_v2"


def test_rollback_without_history_is_refused() -> None:
    with pytest.raises(PromotionError, match="no promotion of role 'stable' to roll back"):
        rollback_target((), "stable", ACTIVE)


def test_rollback_when_active_changed_since_is_refused() -> None:
    with pytest.raises(PromotionError, match="served by 'stable', not by 'recurrent_v2'"):
        rollback_target((record(1, "recurrent_v2"),), "stable", {"stable": "stable"})


def test_rollback_of_first_activation_is_refused() -> None:
    with pytest.raises(PromotionError, match="had no previous lane"):
        rollback_target((record(1, "stable", None),), "stable", ACTIVE)
