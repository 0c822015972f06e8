"""Bounded retry of a whole command when optimistic concurrency loses a race.

The callable must redo load -> decide -> append from scratch (a fresh transaction), so a
retry decides against the events that beat it. The waits come from the one backoff policy
(``waybill.common.backoff``) with full jitter: two writers that collided once should not
collide again in lockstep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from waybill.common.backoff import Backoff, Jitter, RetryPolicy, retrying
from waybill.common.eventstore.errors import ConcurrencyError

T = TypeVar("T")

# Three retries after waits of at most 0.05, 0.1 and 0.2 s: a lost race is settled by the
# next read, so the budget is short; a stream that hot needs a different design, not patience.
CONFLICT_RETRY = RetryPolicy(
    attempts=4, backoff=Backoff(base_s=0.05, factor=2, max_s=0.2, jitter=Jitter.FULL)
)


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ConcurrencyError)


async def retry_on_conflict(
    fn: Callable[[], Awaitable[T]], *, policy: RetryPolicy = CONFLICT_RETRY
) -> T:
    """Run ``fn``; on ``ConcurrencyError`` run it again, up to ``policy.attempts`` in all.

    After the last attempt its ``ConcurrencyError`` propagates.
    """
    async for attempt in retrying(policy, lambda state: None, retry_if=_is_conflict):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity either returns or re-raises")
