"""Every error the notifier raises to a caller: a stable code and a failure class.

No HTTP status here: ``waybill.notifier.api.ERROR_STATUS`` maps each code once, at the edge.
"""

from __future__ import annotations

from waybill.common.failures import DomainError, FailureType


class NotifierError(DomainError):
    code = "NOTIFIER_ERROR"


class EndpointNotFound(NotifierError):
    code = "WEBHOOK_ENDPOINT_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class DeliveryNotFound(NotifierError):
    code = "DELIVERY_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class DeliveryPending(NotifierError):
    """A replay of a message that is still being attempted (its schedule runs)."""

    code = "DELIVERY_PENDING"
