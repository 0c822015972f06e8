"""Retry policy: exponential, capped, jittered, and honouring Retry-After."""

from __future__ import annotations

from waybill.common.consumer.retry import RetryPolicy


def test_backoff_grows_exponentially_until_the_cap_without_jitter() -> None:
    policy = RetryPolicy(base_s=0.2, factor=2, max_s=1.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_jittered_backoff_stays_between_zero_and_its_ceiling() -> None:
    policy = RetryPolicy(base_s=0.2, factor=2, max_s=30, jitter=True)
    delays = [policy.delay(3) for _ in range(200)]
    assert all(0 <= d <= 0.8 for d in delays)
    assert len(set(delays)) > 1


def test_retry_after_lengthens_the_wait_but_never_beyond_the_cap() -> None:
    policy = RetryPolicy(base_s=0.2, max_s=5, jitter=False)
    assert policy.delay(1, retry_after_s=2) == 2
    assert policy.delay(1, retry_after_s=60) == 5
