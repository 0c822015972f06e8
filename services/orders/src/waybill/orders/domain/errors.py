"""Domain errors: each carries a stable code and the HTTP status it maps to."""

from __future__ import annotations

from waybill.common.consumer.failures import FailureClass


class OrdersError(Exception):
    code = "ORDERS_ERROR"
    status = 409
    failure_class = FailureClass.BUSINESS_RULE

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InsufficientStock(OrdersError):
    code = "INSUFFICIENT_STOCK"


class InvalidTransition(OrdersError):
    code = "INVALID_TRANSITION"


class CannotCancelAfterShipping(OrdersError):
    code = "ORDER_CANNOT_CANCEL_AFTER_SHIPPING"


class OrderNotFound(OrdersError):
    code = "ORDER_NOT_FOUND"
    status = 404
    failure_class = FailureClass.PERMANENT_NOT_FOUND


class InvalidOrder(OrdersError):
    code = "VALIDATION_ERROR"
    status = 422
    failure_class = FailureClass.PERMANENT_INVALID_INPUT
