"""Every error the shipping service raises to a caller: a stable code and a failure class.

No HTTP status here: ``waybill.shipping.api.ERROR_STATUS`` maps each code once, at the edge.
"""

from __future__ import annotations

from waybill.common.failures import DomainError, FailureType


class ShippingError(DomainError):
    code = "SHIPPING_ERROR"


class ShipmentNotFound(ShippingError):
    code = "SHIPMENT_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class AgentNotFound(ShippingError):
    code = "AGENT_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class AssignmentNotFound(ShippingError):
    """No such offer for this agent (never offered to it, or another tenant's)."""

    code = "ASSIGNMENT_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class InvalidTransition(ShippingError):
    code = "INVALID_TRANSITION"


class AssignmentConflict(ShippingError):
    """Another request holds the shipment right now (lock not available): ask again."""

    code = "ASSIGNMENT_CONFLICT"
    failure_type = FailureType.TRANSIENT_DATABASE


class AssignmentAlreadyAccepted(ShippingError):
    code = "ASSIGNMENT_ALREADY_ACCEPTED"


class OfferExpired(ShippingError):
    """The offer ran out, was superseded by a later wave, or was withdrawn."""

    code = "OFFER_EXPIRED"


class AgentAtCapacity(ShippingError):
    code = "AGENT_AT_CAPACITY"


class DeliveryAttemptsExhausted(ShippingError):
    code = "DELIVERY_ATTEMPTS_EXHAUSTED"


class InvalidAgent(ShippingError):
    code = "VALIDATION_ERROR"
    failure_type = FailureType.PERMANENT_INVALID_INPUT


class RecordedRefusal(ShippingError):
    """A refusal that is itself a fact worth keeping (a wrong delivery code counts towards the
    lock): the handler appends ``events`` and commits them, then raises the refusal."""

    def __init__(self, detail: str, *, events: tuple[object, ...] = ()) -> None:
        super().__init__(detail)
        self.events = events


class DeliveryCodeMismatch(RecordedRefusal):
    code = "DELIVERY_CODE_MISMATCH"
    failure_type = FailureType.PERMANENT_INVALID_INPUT


class DeliveryCodeLocked(RecordedRefusal):
    code = "DELIVERY_CODE_LOCKED"
