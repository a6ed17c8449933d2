"""Per-key rate limits: token buckets driven by a hand-held clock (pure)."""

from __future__ import annotations

import pytest

from qwend.public.limits import KeyLimits, Limit, Limited, RateLimiter, TokenBucket

ALICE = b"alice-digest"
BOB = b"bob-digest"


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(60, now=100.0)  # one a second, bursts of 60
    assert bucket.level(100.0) == 60
    bucket.take(60, 100.0)
    assert bucket.wait_s(1, 100.0) == pytest.approx(1.0)
    assert bucket.level(100.5) == pytest.approx(0.5)
    assert bucket.wait_s(1, 100.5) == pytest.approx(0.5)
    assert bucket.level(1000.0) == 60  # never above its capacity


def test_a_clock_read_out_of_order_does_not_drain_a_bucket() -> None:
    bucket = TokenBucket(60, now=100.0)
    bucket.take(30, 100.0)
    assert bucket.level(99.0) == 30  # an earlier reading (another task's) refills nothing
    bucket.take(1, 99.0)
    assert bucket.level(101.0) == pytest.approx(30.0)


def test_more_than_a_bucket_holds_can_never_pass() -> None:
    bucket = TokenBucket(100, now=0.0)
    assert bucket.wait_s(101, 0.0) == float("inf")


def test_requests_per_minute_allow_a_burst_then_the_rate() -> None:
    limiter = RateLimiter()
    limits = KeyLimits(requests_per_minute=3)
    assert [limiter.admit(ALICE, limits, 10, 0.0) for _ in range(3)] == [None, None, None]
    refused = limiter.admit(ALICE, limits, 10, 0.0)
    assert isinstance(refused, Limited)
    assert (refused.limit, refused.per_minute, refused.cost) == (Limit.REQUESTS, 3, 1)
    assert refused.retry_after_s == pytest.approx(20.0)
    assert refused.retry_after_header == 20
    assert "3 requests per minute" in refused.message()
    assert "20 s" in refused.message()
    assert limiter.admit(ALICE, limits, 10, 19.9) is not None
    assert limiter.admit(ALICE, limits, 10, 20.0) is None
    assert limiter.admit(ALICE, limits, 10, 20.0) is not None


def test_keys_have_buckets_of_their_own() -> None:
    limiter = RateLimiter()
    limits = KeyLimits(requests_per_minute=1)
    assert limiter.admit(ALICE, limits, 1, 0.0) is None
    assert limiter.admit(ALICE, limits, 1, 0.0) is not None
    assert limiter.admit(BOB, limits, 1, 0.0) is None


def test_tokens_per_minute_charge_the_estimate_up_front() -> None:
    limiter = RateLimiter()
    limits = KeyLimits(tokens_per_minute=1200)  # 20 tokens a second
    assert limiter.admit(ALICE, limits, 1000, 0.0) is None
    refused = limiter.admit(ALICE, limits, 400, 0.0)
    assert refused is not None and refused.limit is Limit.TOKENS and refused.cost == 400
    assert refused.retry_after_s == pytest.approx(10.0)  # 200 missing at 20/s
    assert limiter.admit(ALICE, limits, 200, 0.0) is None  # a smaller one fits


def test_a_request_larger_than_the_token_limit_is_refused_for_good() -> None:
    limiter = RateLimiter()
    refused = limiter.admit(ALICE, KeyLimits(tokens_per_minute=100), 101, 0.0)
    assert refused is not None
    assert refused.retry_after_s is None and refused.retry_after_header is None
    assert "101 tokens" in refused.message() and "lower max_tokens" in refused.message()


def test_a_refusal_costs_nothing_in_any_bucket() -> None:
    limiter = RateLimiter()
    limits = KeyLimits(requests_per_minute=2, tokens_per_minute=100)
    assert limiter.admit(ALICE, limits, 90, 0.0) is None
    refused = limiter.admit(ALICE, limits, 50, 0.0)  # tokens short: no request is taken
    assert refused is not None and refused.limit is Limit.TOKENS
    assert limiter.admit(ALICE, limits, 10, 0.0) is None  # the second request still fits
    refused = limiter.admit(ALICE, limits, 0, 0.0)
    assert refused is not None and refused.limit is Limit.REQUESTS


def test_the_longest_wait_is_the_one_reported() -> None:
    limiter = RateLimiter()
    limits = KeyLimits(requests_per_minute=1, tokens_per_minute=60)
    assert limiter.admit(ALICE, limits, 60, 0.0) is None
    refused = limiter.admit(ALICE, limits, 60, 0.0)  # requests: 60 s; tokens: 60 s
    assert refused is not None and refused.retry_after_s == pytest.approx(60.0)
    refused = limiter.admit(ALICE, limits, 61, 0.0)  # tokens: never
    assert refused is not None and refused.retry_after_s is None


def test_no_limits_admit_everything_and_keep_no_bucket() -> None:
    limiter = RateLimiter()
    for _ in range(1000):
        assert limiter.admit(ALICE, KeyLimits(), 10**9, 0.0) is None
    assert limiter.bucket_count == 0


def test_retain_forgets_removed_keys_and_changed_limits() -> None:
    limiter = RateLimiter()
    one = KeyLimits(requests_per_minute=1)
    limiter.admit(ALICE, one, 1, 0.0)
    limiter.admit(BOB, one, 1, 0.0)
    assert limiter.bucket_count == 2
    limiter.retain([(ALICE, one)])
    assert limiter.bucket_count == 1
    assert limiter.admit(ALICE, one, 1, 0.0) is not None  # kept: still empty
    assert limiter.admit(BOB, one, 1, 0.0) is None  # Bob came back: a fresh bucket
    two = KeyLimits(requests_per_minute=2)
    limiter.retain([(ALICE, two)])
    assert limiter.admit(ALICE, two, 1, 0.0) is None  # a new limit starts full
