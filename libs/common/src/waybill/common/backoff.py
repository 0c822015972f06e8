"""The one backoff policy: how long to wait before trying again, for every retry in Waybill.

Exponential (``base_s * factor ** (attempt - 1)``), capped at ``max_s``, jittered so a herd of
consumers, relays or chargers that failed together does not come back together:

* ``Jitter.FULL`` -- uniform in ``[0, ceiling]``: spreads a herd best (AWS architecture blog,
  "Exponential Backoff And Jitter"); the default;
* ``Jitter.EQUAL`` -- half the ceiling fixed, half random: retries are always spaced (calls to
  a provider that is struggling), yet not in lockstep;
* ``Jitter.NONE`` -- the ceiling itself (a supervisor restarting one process).

A ``retry_after_s`` (a 429's or 503's ``Retry-After``) replaces the computed wait: the server
knows when it will take us again, our exponential guess is for when nobody tells us. With
jitter it is lengthened by up to 10 % so a herd told the same moment spreads out; it is capped
by ``max_s`` like any wait (callers that must not come back earlier compare first).

Why the formula is written here and not taken from tenacity's ``wait_*``: those need a
``RetryCallState`` and ignore ``Retry-After``, while the outbox relay, the dead-letter
publisher, the supervisor and the work queues need a delay outside a tenacity loop. Tenacity
still runs every retry *loop*: ``tenacity_wait`` and ``retrying`` build its waits and loops
from this policy.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

RETRY_AFTER_SPREAD = 0.1


class Jitter(StrEnum):
    FULL = "full"
    EQUAL = "equal"
    NONE = "none"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap and a jitter mode (see the module docstring)."""

    base_s: float = 0.2
    factor: float = 2.0
    max_s: float = 30.0
    jitter: Jitter = Jitter.FULL

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (1 = the first retry): never decreasing."""
        exponent = max(attempt - 1, 0)
        try:
            return min(self.max_s, self.base_s * self.factor**exponent)
        except OverflowError:  # a streak of thousands of failures: the cap is the answer
            return self.max_s

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (1 = the first retry)."""
        if retry_after_s is not None:
            spread = 0.0 if self.jitter is Jitter.NONE else RETRY_AFTER_SPREAD
            return min(self.max_s, max(retry_after_s, 0.0) * random.uniform(1.0, 1.0 + spread))
        ceiling = self.ceiling(attempt)
        if self.jitter is Jitter.FULL:
            return random.uniform(0, ceiling)
        if self.jitter is Jitter.EQUAL:
            return ceiling / 2 + random.uniform(0, ceiling / 2)
        return ceiling


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one operation: ``attempts`` in all (the first included), spaced by
    ``backoff``.

    The consumer's default holds a poison record's partition for about the sum of the waits:
    0.2 + 0.4 + 0.8 + 1.6 = 3 s at most (less with jitter) before it is dead-lettered.
    """

    attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        return self.backoff.delay(attempt, retry_after_s)


DEFAULT_RETRY = RetryPolicy()


def retry_after_of(exc: BaseException | None) -> float | None:
    """The ``retry_after_s`` an exception carries (e.g. from a 429's ``Retry-After``)."""
    value = getattr(exc, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


def tenacity_wait(backoff: Backoff) -> Callable[[RetryCallState], float]:
    """A tenacity ``wait`` that asks ``backoff``, honouring the failed attempt's
    ``retry_after_s``."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return backoff.delay(state.attempt_number, retry_after_of(exc))

    return wait


def retrying(
    policy: RetryPolicy,
    on_retry: Callable[[RetryCallState], Awaitable[None] | None],
    *,
    retry_if: Callable[[BaseException], bool] | None = None,
    wait: Callable[[RetryCallState], float] | None = None,
) -> AsyncRetrying:
    """A tenacity loop for ``policy``; ``on_retry`` runs before each sleep (log, count).

    By default only what the failure taxonomy calls retryable is retried (a permanent failure
    stops at the first attempt) and ``wait`` is ``tenacity_wait(policy.backoff)``.
    """
    if retry_if is None:
        # Imported here, not at the top: the classifier loads httpx, aiokafka and sqlalchemy,
        # and the policy alone (supervisor, relay, queues) should not pay for them.
        from waybill.common.failures.classify import worth_retrying

        retry_if = worth_retrying
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait or tenacity_wait(policy.backoff),
        retry=retry_if_exception(retry_if),
        before_sleep=on_retry,
        reraise=True,
    )
