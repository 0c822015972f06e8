"""What a provider call can end in, besides an answer.

Three outcomes matter to the callers, and they must never be confused:

* ``CardDeclined`` -- the provider said no for good: the payment fails, nothing is retried;
* ``ProviderRejected`` -- the provider refused the request itself (4xx): retrying the same
  request cannot help (a 401/403 means our own configuration is wrong);
* ``ProviderUnavailable`` -- we could not get an answer (network, timeout, 5xx, rate limit,
  circuit open) after the retries: the payment *waits*; it is never failed for an outage.
"""

from __future__ import annotations

from waybill.common.failures import FailureType
from waybill.payments.gateway.models import Intent


class ProviderError(Exception):
    failure_type = FailureType.EXTERNAL_SERVICE_UNAVAILABLE


class CardDeclined(ProviderError):
    failure_type = FailureType.BUSINESS_LOGIC_VIOLATION

    def __init__(self, code: str, message: str, intent: Intent | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.intent = intent


class ProviderRejected(ProviderError):
    failure_type = FailureType.PERMANENT_INVALID_INPUT

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def is_configuration(self) -> bool:
        """Our key or our URL is wrong: waiting (and an operator) fixes it, not the customer."""
        return self.status in (401, 403)


class ProviderUnavailable(ProviderError):
    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class TransientFailure(Exception):
    """One attempt failed in a way another attempt may not (the retry loop's currency)."""

    def __init__(
        self, reason: str, *, retry_after_s: float | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.rate_limited = rate_limited
