"""The circuit breaker state machine, driven by an explicit clock."""

from __future__ import annotations

import pytest

from qwend.routing.breaker import BreakerState, CircuitBreaker


def test_opens_after_threshold_consecutive_failures() -> None:
    b = CircuitBreaker(threshold=3, cooldown_s=10)
    for _ in range(2):
        b.on_failure(0)
    assert b.state(0) is BreakerState.CLOSED and b.available(0)
    b.on_failure(0)
    assert b.state(0) is BreakerState.OPEN
    assert not b.available(5)
    assert b.view(5).opened == 1


def test_success_resets_the_failure_count() -> None:
    b = CircuitBreaker(threshold=2, cooldown_s=1)
    b.on_failure(0)
    b.on_success()
    b.on_failure(0)
    assert b.state(0) is BreakerState.CLOSED
    assert b.view(0).consecutive_failures == 1


def test_half_open_allows_exactly_one_probe() -> None:
    b = CircuitBreaker(threshold=1, cooldown_s=10)
    b.on_failure(0)
    assert not b.available(9.9)
    assert b.state(10) is BreakerState.HALF_OPEN
    assert b.available(10)
    b.on_attempt(10)
    assert not b.available(10.5)  # the probe is out
    b.on_success()
    assert b.state(11) is BreakerState.CLOSED and b.available(11)


def test_failed_probe_reopens_for_another_cooldown() -> None:
    b = CircuitBreaker(threshold=1, cooldown_s=10)
    b.on_failure(0)
    b.on_attempt(10)
    b.on_failure(10.5)
    assert b.state(19) is BreakerState.OPEN
    assert b.state(20.5) is BreakerState.HALF_OPEN
    assert b.view(20.5).opened == 2


def test_neutral_outcome_frees_the_probe() -> None:
    b = CircuitBreaker(threshold=1, cooldown_s=1)
    b.on_failure(0)
    b.on_attempt(1)
    b.on_neutral()
    assert b.available(1)


def test_attempts_when_closed_change_nothing() -> None:
    b = CircuitBreaker()
    b.on_attempt(0)
    assert b.available(0) and b.state(0) is BreakerState.CLOSED


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(threshold=0)
