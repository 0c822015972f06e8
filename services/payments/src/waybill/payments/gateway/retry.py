"""How long to wait before the next provider attempt, and when to stop trying.

Both waits come from the one backoff policy (``waybill.common.backoff``) with equal jitter
(half the step fixed, half random), so retries are always spaced yet a herd of chargers does
not retry in lockstep:

* network errors, timeouts and 5xx: ``errors`` (1 s doubling to 30 s by default);
* 429: the provider's ``Retry-After`` is honoured (we wait at least that long, plus up to
  10 % so a herd spreads out); without one, ``rate_limits`` (5 s doubling to 120 s). A
  ``Retry-After`` beyond ``rate_limits.max_s`` is not waited out in-process: the call gives
  up and the payment is rescheduled for after it (``reschedule_s``, see the charger).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from waybill.common.backoff import Backoff, Jitter
from waybill.payments.gateway.errors import TransientFailure


def _errors() -> Backoff:
    return Backoff(base_s=1.0, factor=2.0, max_s=30.0, jitter=Jitter.EQUAL)


def _rate_limits() -> Backoff:
    return Backoff(base_s=5.0, factor=2.0, max_s=120.0, jitter=Jitter.EQUAL)


@dataclass(frozen=True)
class ProviderRetry:
    attempts: int = 3
    errors: Backoff = field(default_factory=_errors)
    rate_limits: Backoff = field(default_factory=_rate_limits)

    def wait_s(self, failure: TransientFailure, retry_number: int) -> float:
        """Seconds before retry ``retry_number`` (1 = the first retry) after ``failure``."""
        if failure.rate_limited:
            return self.rate_limits.delay(retry_number, failure.retry_after_s)
        return self.errors.delay(retry_number)

    def worth_waiting(self, failure: TransientFailure) -> bool:
        """False when the provider asks for a longer pause than we wait in-process."""
        return failure.retry_after_s is None or failure.retry_after_s <= self.rate_limits.max_s

    def reschedule_s(self, attempts_so_far: int, retry_after_s: float | None) -> float:
        """When a payment that could not reach the provider is tried again (whole call):
        the errors' backoff, but never before the provider's ``Retry-After``."""
        return max(self.errors.delay(attempts_so_far + 1), retry_after_s or 0.0)
