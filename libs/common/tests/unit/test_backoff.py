"""The one backoff policy: exponential, capped, jittered, and honouring Retry-After."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import RetryCallState

from waybill.common.backoff import Backoff, Jitter, RetryPolicy, retrying, tenacity_wait
from waybill.common.failures import PermanentError, TransientError


def test_backoff_grows_exponentially_until_the_cap_without_jitter() -> None:
    policy = Backoff(base_s=0.2, factor=2, max_s=1.0, jitter=Jitter.NONE)
    assert [policy.delay(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_jittered_backoff_stays_between_zero_and_its_ceiling() -> None:
    policy = Backoff(base_s=0.2, factor=2, max_s=30, jitter=Jitter.FULL)
    delays = [policy.delay(3) for _ in range(200)]
    assert all(0 <= d <= 0.8 for d in delays)
    assert len(set(delays)) > 1


def test_retry_after_lengthens_the_wait_but_never_beyond_the_cap() -> None:
    policy = Backoff(base_s=0.2, max_s=5, jitter=Jitter.NONE)
    assert policy.delay(1, retry_after_s=2) == 2
    assert policy.delay(1, retry_after_s=60) == 5


def test_equal_jitter_keeps_at_least_half_the_ceiling() -> None:
    policy = Backoff(base_s=1, max_s=30, jitter=Jitter.EQUAL)
    for attempt, step in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 30)]:
        waits = [policy.delay(attempt) for _ in range(50)]
        assert all(step / 2 <= w <= step for w in waits)
        assert len(set(waits)) > 1


def test_a_jittered_retry_after_is_waited_at_least_and_spread_by_at_most_ten_percent() -> None:
    policy = Backoff(base_s=0.001, max_s=120, jitter=Jitter.EQUAL)
    waits = [policy.delay(n, retry_after_s=0.2) for n in range(1, 40)]
    assert all(0.2 <= w <= 0.22 for w in waits)
    assert len(set(waits)) > 1


@given(
    base_s=st.floats(0.001, 10),
    factor=st.floats(1, 4),
    max_s=st.floats(0.001, 600),
    jitter=st.sampled_from(list(Jitter)),
    attempt=st.integers(1, 5000),
)
def test_the_ceiling_never_decreases_and_no_wait_exceeds_it(
    base_s: float, factor: float, max_s: float, jitter: Jitter, attempt: int
) -> None:
    policy = Backoff(base_s=base_s, factor=factor, max_s=max_s, jitter=jitter)
    assert policy.ceiling(attempt) <= policy.ceiling(attempt + 1) <= max_s
    assert 0 <= policy.delay(attempt) <= policy.ceiling(attempt)


def _state_after(exc: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_the_tenacity_wait_reads_retry_after_from_the_failed_attempt() -> None:
    wait = tenacity_wait(Backoff(base_s=0.1, max_s=10, jitter=Jitter.NONE))
    limited = TransientError("slow down")
    limited.retry_after_s = 3  # type: ignore[attr-defined]
    assert wait(_state_after(limited, 1)) == 3
    assert wait(_state_after(TransientError("blip"), 2)) == pytest.approx(0.2)


async def test_the_retry_loop_retries_transient_failures_only() -> None:
    policy = RetryPolicy(attempts=3, backoff=Backoff(base_s=0.001, max_s=0.001))
    calls = {"transient": 0, "permanent": 0}

    async def run(kind: str, exc: Exception) -> None:
        async for attempt in retrying(policy, lambda state: None):
            with attempt:
                calls[kind] += 1
                raise exc

    with pytest.raises(TransientError):
        await run("transient", TransientError("blip"))
    with pytest.raises(PermanentError):
        await run("permanent", PermanentError("never"))
    assert calls == {"transient": 3, "permanent": 1}
