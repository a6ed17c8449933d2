"""The file-descriptor plan: a reserve kept out of the limit, the rest shared by listeners."""

from __future__ import annotations

import pytest

from qwend.daemon.fdplan import BASE_RESERVE, PER_LANE_RESERVE, lane_reserve, plan_fds


def test_the_reserve_grows_with_lanes_and_their_upstream_connections() -> None:
    assert lane_reserve(0, 8) == BASE_RESERVE
    assert lane_reserve(3, 8) == BASE_RESERVE + 3 * (PER_LANE_RESERVE + 8)


def test_a_roomy_limit_keeps_the_configured_cap() -> None:
    plan = plan_fds(65536, reserve=328, listeners=4, configured=1024)
    assert plan.per_listener == 1024 and not plan.lowered


def test_a_tight_limit_lowers_the_cap_so_the_reserve_stays_free() -> None:
    # The host: 1,024 descriptors; 1,100 idle connections used to take them all.
    plan = plan_fds(1024, reserve=328, listeners=2, configured=1024)
    assert plan.lowered
    assert plan.per_listener == (1024 - 328) // 2
    assert plan.listeners * plan.per_listener + plan.reserve <= plan.limit


@pytest.mark.parametrize("limit", [0, 100, 328, 329])
def test_a_limit_below_the_reserve_still_leaves_one_connection(limit: int) -> None:
    assert plan_fds(limit, reserve=328, listeners=3, configured=1024).per_listener == 1


@pytest.mark.parametrize(
    ("limit", "listeners", "configured"),
    [(512, 1, 10), (512, 7, 10_000), (10**6, 3, 1), (2000, 0, 50)],
)
def test_the_caps_never_exceed_the_configured_one_nor_the_budget(
    limit: int, listeners: int, configured: int
) -> None:
    plan = plan_fds(limit, reserve=200, listeners=listeners, configured=configured)
    assert 1 <= plan.per_listener <= configured
    if plan.per_listener > 1:
        assert max(1, listeners) * plan.per_listener <= limit - 200
