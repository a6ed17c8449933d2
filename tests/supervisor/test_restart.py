"""Restart policy: backoff growth, jitter bounds, crash-loop window."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from qwend.config.model import RestartConfig
from qwend.supervisor.restart import RestartPolicy, backoff_delay

CFG = RestartConfig(
    backoff_min_s=1.0, backoff_max_s=30.0, crash_loop_limit=3, crash_loop_window_s=60.0
)


def test_backoff_doubles_up_to_the_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    rng = Top()
    assert [backoff_delay(CFG, n, rng) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_jitter_stays_in_the_upper_half_and_within_bounds() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(CFG, 4, rng) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, not constant


@given(
    st.integers(min_value=0, max_value=1000),
    st.floats(min_value=0.01, max_value=100),
    st.floats(min_value=1, max_value=1000),
)
def test_delay_is_always_within_min_and_max(attempt: int, lo: float, span: float) -> None:
    cfg = RestartConfig(backoff_min_s=lo, backoff_max_s=lo + span)
    delay = backoff_delay(cfg, attempt, random.Random(attempt))
    assert lo <= delay <= lo + span


def test_more_than_limit_restarts_in_window_gives_up() -> None:
    policy = RestartPolicy(CFG, random.Random(1))
    decisions = [policy.record_crash(t) for t in (0.0, 1.0, 2.0, 3.0)]
    assert [d.give_up for d in decisions] == [False, False, False, True]
    assert decisions[-1].crashes_in_window == 4
    assert "crash loop" in decisions[-1].reason
    assert "reset" in decisions[-1].reason
    assert decisions[-1].delay_s == 0.0


def test_crashes_outside_the_window_are_forgotten() -> None:
    policy = RestartPolicy(CFG, random.Random(1))
    for t in (0.0, 1.0, 2.0):
        assert not policy.record_crash(t).give_up
    decision = policy.record_crash(70.0)
    assert not decision.give_up
    assert decision.crashes_in_window == 1
    assert policy.record_crash(200.0).crashes_in_window == 1


def test_reset_clears_the_history() -> None:
    policy = RestartPolicy(CFG, random.Random(1))
    for t in range(4):
        policy.record_crash(float(t))
    policy.reset()
    assert not policy.record_crash(5.0).give_up


def test_reconfigure_applies_a_new_limit() -> None:
    policy = RestartPolicy(CFG, random.Random(1))
    policy.record_crash(0.0)
    policy.reconfigure(RestartConfig(crash_loop_limit=1, crash_loop_window_s=60.0))
    assert policy.record_crash(1.0).give_up


def test_internal_errors_back_off_without_ever_giving_up() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    policy = RestartPolicy(CFG, Top())
    assert [policy.record_error() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert not policy.record_crash(0.0).give_up  # errors are not crashes
    policy.clear_errors()
    assert policy.record_error() == 1
