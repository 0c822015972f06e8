"""Events published by the payments service on ``waybill.payments.events`` (schema version 1)."""

from __future__ import annotations

from typing import ClassVar

from waybill.common.contracts.event import DomainEvent
from waybill.common.registry import EventRegistry


class PaymentEvent(DomainEvent):
    """Base of every payments event: produced by the payments service."""

    service: ClassVar[str] = "payments"


class PaymentCreated(PaymentEvent):
    """A payment exists for the order and will be charged (internal step; no money moved)."""

    event_type: ClassVar[str] = "payment.created"
    payment_id: str
    order_id: str
    amount_cents: int
    currency: str
    payment_method: str
    provider: str


class PaymentProcessing(PaymentEvent):
    """The provider accepted the charge but settles it later (webhook or payment sync)."""

    event_type: ClassVar[str] = "payment.processing"
    payment_id: str
    order_id: str
    provider_payment_id: str


class PaymentCaptured(PaymentEvent):
    event_type: ClassVar[str] = "payment.captured"
    payment_id: str
    order_id: str
    amount_cents: int
    currency: str
    provider: str
    provider_payment_id: str


class PaymentFailed(PaymentEvent):
    event_type: ClassVar[str] = "payment.failed"
    payment_id: str
    order_id: str
    code: str  # e.g. card_declined
    reason: str


class PaymentRefunded(PaymentEvent):
    event_type: ClassVar[str] = "payment.refunded"
    payment_id: str
    order_id: str
    amount_cents: int
    refund_id: str
    reason: str | None = None


PAYMENT_EVENTS: tuple[type[PaymentEvent], ...] = (
    PaymentCreated,
    PaymentProcessing,
    PaymentCaptured,
    PaymentFailed,
    PaymentRefunded,
)


def register(registry: EventRegistry) -> EventRegistry:
    """Add the public payments events (payments adds its private ones itself)."""
    return registry.add(*PAYMENT_EVENTS)
