"""Domain errors of payments: each carries a stable code and the HTTP status it maps to."""

from __future__ import annotations

from waybill.common.consumer.failures import FailureClass


class PaymentsError(Exception):
    code = "PAYMENTS_ERROR"
    status = 409
    failure_class = FailureClass.BUSINESS_RULE

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidTransition(PaymentsError):
    code = "INVALID_TRANSITION"


class RefundExceedsCaptured(PaymentsError):
    code = "REFUND_EXCEEDS_CAPTURED"
    status = 422


class PaymentNotFound(PaymentsError):
    code = "PAYMENT_NOT_FOUND"
    status = 404
    failure_class = FailureClass.PERMANENT_NOT_FOUND
