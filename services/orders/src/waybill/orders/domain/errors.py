"""Every error the orders service raises to a caller: a stable code and a failure class.

No HTTP status here: ``waybill.orders.api.ERROR_STATUS`` maps each code once, at the edge.
"""

from __future__ import annotations

from waybill.common.failures import DomainError, FailureType


class OrdersError(DomainError):
    code = "ORDERS_ERROR"


class InsufficientStock(OrdersError):
    code = "INSUFFICIENT_STOCK"


class InvalidTransition(OrdersError):
    code = "INVALID_TRANSITION"


class CannotCancelAfterShipping(OrdersError):
    code = "ORDER_CANNOT_CANCEL_AFTER_SHIPPING"


class OrderNotFound(OrdersError):
    code = "ORDER_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class InvalidOrder(OrdersError):
    code = "VALIDATION_ERROR"
    failure_type = FailureType.PERMANENT_INVALID_INPUT


class IdempotencyKeyReused(OrdersError):
    """The same ``Idempotency-Key`` came with a different body (a client bug, never retried)."""

    code = "IDEMPOTENCY_KEY_REUSED"


class SkuNotFound(OrdersError):
    code = "SKU_NOT_FOUND"
