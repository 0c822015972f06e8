"""Every error the payments service raises to a caller: a stable code and a failure class.

No HTTP status here: ``waybill.payments.api.ERROR_STATUS`` maps each code once, at the edge.
"""

from __future__ import annotations

from waybill.common.failures import DomainError, FailureType


class PaymentsError(DomainError):
    code = "PAYMENTS_ERROR"


class InvalidTransition(PaymentsError):
    code = "INVALID_TRANSITION"


class RefundExceedsCaptured(PaymentsError):
    code = "REFUND_EXCEEDS_CAPTURED"


class PaymentNotFound(PaymentsError):
    code = "PAYMENT_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class ProviderUnreachable(PaymentsError):
    """A refund could not reach the provider now (outage, rate limit, open breaker)."""

    code = "PROVIDER_UNAVAILABLE"
    title = "Payment provider unavailable"
    failure_type = FailureType.EXTERNAL_SERVICE_UNAVAILABLE


class RefundRefusedByProvider(PaymentsError):
    """The provider refused the refund itself (e.g. refunded outside Waybill)."""

    code = "PROVIDER_REJECTED"
    title = "Refused by the payment provider"
    failure_type = FailureType.PERMANENT_INVALID_INPUT
