"""Retry policy for a consumer: exponential backoff with full jitter and a cap (tenacity).

Only retryable failure classes (see ``failures.is_retryable``) are retried; a permanent failure
stops at the first attempt. An exception may carry ``retry_after_s`` (e.g. from a 429's
``Retry-After``): the wait is then at least that long, still capped at ``max_s``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from waybill.common.consumer.failures import classify, is_retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one record before dead-lettering it.

    The worst-case time a poison record holds its partition is about the sum of the waits:
    with the defaults 0.2 + 0.4 + 0.8 + 1.6 = 3 s (less with jitter).
    """

    attempts: int = 5
    base_s: float = 0.2
    factor: float = 2
    max_s: float = 30
    jitter: bool = True

    def delay(self, retry_number: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1 = the first retry)."""
        ceiling = min(self.max_s, self.base_s * self.factor ** (retry_number - 1))
        # Full jitter (AWS architecture blog): spreads a thundering herd of consumers best.
        wait = random.uniform(0, ceiling) if self.jitter else ceiling
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.max_s)


DEFAULT_RETRY = RetryPolicy()


def _retry_after(state: RetryCallState) -> float | None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    value = getattr(exc, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


def _worth_retrying(exc: BaseException) -> bool:
    # Exception, not BaseException: a cancelled task must stop, never be retried.
    return isinstance(exc, Exception) and is_retryable(classify(exc))


def retrying(
    policy: RetryPolicy, on_retry: Callable[[RetryCallState], Awaitable[None] | None]
) -> AsyncRetrying:
    """A tenacity loop for ``policy``; ``on_retry`` runs before each sleep (log, count)."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=lambda state: policy.delay(state.attempt_number, _retry_after(state)),
        retry=retry_if_exception(_worth_retrying),
        before_sleep=on_retry,
        reraise=True,
    )
