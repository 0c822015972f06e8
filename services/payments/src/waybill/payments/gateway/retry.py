"""How long to wait before the next provider attempt, and when to stop trying.

Network errors, timeouts and 5xx: exponential backoff with "equal jitter" (half the step fixed,
half random), so retries are always spaced yet a herd of chargers does not retry in lockstep.
429: the provider's ``Retry-After`` is honoured (we wait at least that long, plus up to 10 %
so a herd spreads out); without one, backoff from the rate-limit base. A ``Retry-After`` beyond
``rate_limit_max_s`` is not waited out in-process: the call gives up and the payment is
rescheduled for after it (see the charger).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from waybill.payments.gateway.errors import TransientFailure


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    rate_limit_base_s: float = 5.0
    rate_limit_max_s: float = 120.0

    def wait_s(self, failure: TransientFailure, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1 = the first retry) after ``failure``."""
        if failure.rate_limited:
            if failure.retry_after_s is not None:
                wait = failure.retry_after_s * random.uniform(1.0, 1.1)
                return min(max(wait, failure.retry_after_s), self.rate_limit_max_s)
            return _equal_jitter(
                self.rate_limit_base_s, self.factor, self.rate_limit_max_s, retry_number
            )
        return _equal_jitter(self.base_s, self.factor, self.max_s, retry_number)

    def worth_waiting(self, failure: TransientFailure) -> bool:
        """False when the provider asks for a longer pause than we wait in-process."""
        return failure.retry_after_s is None or failure.retry_after_s <= self.rate_limit_max_s

    def reschedule_s(self, attempts_so_far: int, retry_after_s: float | None) -> float:
        """When a payment that could not reach the provider is tried again (whole call)."""
        wait = _equal_jitter(self.base_s, self.factor, self.max_s, attempts_so_far + 1)
        return max(wait, retry_after_s or 0.0)


def _equal_jitter(base_s: float, factor: float, max_s: float, retry_number: int) -> float:
    step = min(max_s, base_s * factor ** (retry_number - 1))
    return step / 2 + random.uniform(0, step / 2)
