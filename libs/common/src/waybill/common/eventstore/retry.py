"""Bounded retry of a whole command when optimistic concurrency loses a race.

The callable must redo load -> decide -> append from scratch (a fresh transaction), so a
retry decides against the events that beat it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from waybill.common.eventstore.errors import ConcurrencyError

T = TypeVar("T")

DEFAULT_DELAYS = (0.05, 0.1, 0.2)


def _jittered(delays: Sequence[float]) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        base = delays[min(state.attempt_number, len(delays)) - 1]
        # +-50 % jitter: two writers that collided once should not collide again in lockstep.
        return base * random.uniform(0.5, 1.5)

    return wait


async def retry_on_conflict(
    fn: Callable[[], Awaitable[T]], *, delays: Sequence[float] = DEFAULT_DELAYS
) -> T:
    """Run ``fn``; on ``ConcurrencyError`` run it again after each of ``delays`` (jittered).

    After ``len(delays)`` retries the last ``ConcurrencyError`` propagates.
    """
    if not delays:
        return await fn()
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(ConcurrencyError),
        stop=stop_after_attempt(len(delays) + 1),
        wait=_jittered(delays),
        reraise=True,
    ):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity either returns or re-raises")
