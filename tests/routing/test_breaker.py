"""The circuit breaker state machine (outlier ejection), driven by an explicit clock."""

from __future__ import annotations

import pytest

from qwend.routing.breaker import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    TripReason,
    stalled,
)


def breaker(**settings: float) -> CircuitBreaker:
    return CircuitBreaker(BreakerSettings(**settings))  # type: ignore[arg-type]


def test_opens_after_threshold_consecutive_failures() -> None:
    b = breaker(threshold=3, cooldown_s=10)
    for _ in range(2):
        b.on_failure(0)
    assert b.state(0) is BreakerState.CLOSED and b.available(0)
    b.on_failure(0)
    assert b.state(0) is BreakerState.OPEN
    assert not b.available(5)
    assert b.view(5).opened == 1 and b.view(5).reason is TripReason.CONSECUTIVE


def test_success_resets_the_failure_count() -> None:
    b = breaker(threshold=2, cooldown_s=1)
    b.on_failure(0)
    b.on_success(0)
    b.on_failure(0)
    assert b.state(0) is BreakerState.CLOSED
    assert b.view(0).consecutive_failures == 1


def test_every_other_request_failing_ejects_the_lane() -> None:
    """A 50 % failure lane never fails ``threshold`` times in a row: the rate ejects it."""
    b = breaker(threshold=5, failure_ratio=0.3, min_requests=10, window_s=10)
    now = 0.0
    for i in range(9):
        now += 0.1
        (b.on_failure if i % 2 else b.on_success)(now)
    assert b.closed  # 9 requests: below min_requests
    b.on_failure(now + 0.1)
    assert b.state(now + 0.1) is BreakerState.OPEN
    assert b.view(now + 0.1).reason is TripReason.FAILURE_RATE
    assert b.view(now + 0.1).window == (10, 5)


def test_a_rare_failure_does_not_eject() -> None:
    b = breaker(failure_ratio=0.3, min_requests=10, window_s=10)
    for i in range(100):
        now = i * 0.05
        (b.on_failure if i % 5 == 0 else b.on_success)(now)  # 20 %
    assert b.closed


def test_old_failures_slide_out_of_the_window() -> None:
    b = breaker(threshold=100, failure_ratio=0.5, min_requests=10, window_s=10)
    for i in range(4):
        b.on_failure(i * 0.1)
    for i in range(10):
        b.on_success(20 + i * 0.1)  # the failures are 20 s old: out of the window
    b.on_failure(21.5)
    assert b.closed and b.view(21.5).window == (11, 1)


def test_half_open_is_for_the_router_probe_only() -> None:
    b = breaker(threshold=1, cooldown_s=10)
    b.on_failure(0)
    assert not b.needs_probe(9.9)
    assert b.state(10) is BreakerState.HALF_OPEN
    assert not b.available(10)  # client requests never probe
    assert b.needs_probe(10)
    b.on_probe_start(10)
    assert not b.needs_probe(10.5)  # one probe at a time
    b.on_success(10.6)  # a late client success does not close: only the probe does
    assert b.state(10.6) is BreakerState.HALF_OPEN
    b.on_probe_result(11, True)
    assert b.state(11) is BreakerState.CLOSED and b.available(11)
    assert b.view(11).window == (0, 0)  # a fresh window after the probe


def test_failed_probe_reopens_for_another_cooldown() -> None:
    b = breaker(threshold=1, cooldown_s=10)
    b.on_failure(0)
    b.on_probe_start(10)
    b.on_probe_result(10.5, False)
    assert b.state(19) is BreakerState.OPEN
    assert b.state(20.5) is BreakerState.HALF_OPEN
    assert b.view(20.5).opened == 1 and b.view(20.5).reason is TripReason.CONSECUTIVE


def test_a_stalled_lane_that_fails_its_probe_is_not_answering() -> None:
    b = breaker(cooldown_s=10)
    b.trip(0, TripReason.STALLED)
    b.on_probe_start(0)
    b.on_probe_result(1, False)
    assert b.reason is TripReason.PROBE and b.state(5) is BreakerState.OPEN


def test_only_a_failure_rate_ejection_is_degraded() -> None:
    b = breaker(threshold=100, failure_ratio=0.5, min_requests=2)
    assert not b.degraded
    b.on_success(0)
    b.on_failure(0)
    assert b.degraded and b.reason is TripReason.FAILURE_RATE
    b.on_probe_start(10)
    b.on_probe_result(10, False)
    assert b.degraded  # still the same fault
    c = breaker(threshold=1)
    c.on_failure(0)
    assert not c.degraded


def test_trip_ejects_at_once_and_asks_for_a_probe_now() -> None:
    b = breaker(cooldown_s=10)
    b.trip(3, TripReason.STALLED)
    assert not b.available(3)
    assert b.needs_probe(3)
    assert b.view(3).reason is TripReason.STALLED


def test_reset_forgets_everything_and_a_stale_probe_result() -> None:
    b = breaker(threshold=1, cooldown_s=10)
    b.on_failure(0)
    b.on_probe_start(10)
    b.reset()
    assert b.available(10) and b.view(10).consecutive_failures == 0
    b.on_probe_result(11, False)  # the probe of the process before the restart
    assert b.available(11)


def test_failures_while_open_do_not_extend_the_cooldown() -> None:
    b = breaker(threshold=1, cooldown_s=10)
    b.on_failure(0)
    b.on_failure(9)
    assert b.needs_probe(10)


def test_stalled_needs_requests_in_flight_and_quiet_time() -> None:
    assert not stalled(0, 0.0, 100.0, 5.0)
    assert not stalled(2, 96.0, 100.0, 5.0)
    assert stalled(2, 95.0, 100.0, 5.0)


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        breaker(threshold=0)
