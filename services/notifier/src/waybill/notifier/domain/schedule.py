"""The retry schedule of a webhook message (CONTRACT.md § notifier) and what an attempt's
answer means for it. Pure: the deliveries worker asks, these answer."""

from __future__ import annotations

import random
from dataclasses import dataclass

from waybill.common.failures import Classification, FailureType
from waybill.common.failures.taxonomy import KNOWN_TYPE

MAX_DELAY_S = 3600.0  # each delay capped (CONTRACT.md)
JITTER = 0.1  # +-10 %: endpoints failing together do not all come back in the same second


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"60,120,240"`` -> the delays before retries 1, 2, 3 (each at most an hour)."""
    delays = tuple(min(float(part), MAX_DELAY_S) for part in text.split(",") if part.strip())
    if any(d < 0 for d in delays):
        raise ValueError("retry delays must not be negative")
    return delays


@dataclass(frozen=True)
class Schedule:
    """The first attempt at once, then one retry after each delay; a ``Retry-After`` the
    receiver sent is honoured, within the cap."""

    delays: tuple[float, ...]

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds before attempt ``attempt + 1`` (``attempt`` >= 1 just failed)."""
        base = self.delays[min(attempt, len(self.delays)) - 1]
        jittered = base * random.uniform(1 - JITTER, 1 + JITTER)
        if retry_after_s is not None:
            jittered = max(jittered, min(retry_after_s, MAX_DELAY_S))
        return jittered


def error_class(status_code: int | None, failure: str | None) -> str | None:
    """The attempt's error class (CONTRACT.md): None for a 2xx."""
    if failure is not None:
        return failure
    assert status_code is not None
    if 200 <= status_code < 300:
        return None
    return "http_4xx" if status_code < 500 else "http_5xx"


def is_success(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def disables_endpoint(status_code: int | None) -> bool:
    """410 Gone: the receiver says the endpoint is gone for good; stop at once."""
    return status_code == 410


def counts_against_breaker(status_code: int | None, failure: str | None) -> bool:
    """Whether an attempt says the endpoint's host is down or drowning (no answer, or 5xx): the
    breaker counts these. A 4xx is the receiver answering; it keeps the circuit closed."""
    if failure in ("dns", "connect", "tls", "timeout"):
        return True
    return status_code is not None and status_code >= 500


def failure_of(error: str | None, status_code: int | None) -> Classification:
    """The failure taxonomy's classification of a message that failed for good (its dead
    letter's): an error class and a status are as telling as a known exception type."""
    return Classification.of(failure_type_of(error, status_code), KNOWN_TYPE)


def failure_type_of(error: str | None, status_code: int | None) -> FailureType:
    """The failure type of a message that failed for good."""
    if error in ("dns", "connect", "tls", "timeout"):
        return FailureType.TRANSIENT_NETWORK
    if error in ("unsafe_address", "disabled"):
        return FailureType.CONFIGURATION_MISSING_ENV
    if status_code == 429:
        return FailureType.TRANSIENT_RATE_LIMIT
    if status_code in (401, 403):
        return FailureType.PERMANENT_AUTHENTICATION
    if status_code in (404, 410):
        return FailureType.PERMANENT_NOT_FOUND
    if status_code is not None and 400 <= status_code < 500:
        return FailureType.PERMANENT_INVALID_INPUT
    return FailureType.EXTERNAL_SERVICE_UNAVAILABLE  # 5xx, too_large: the receiver's side
