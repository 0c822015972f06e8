"""Events of the notifier, published on ``waybill.notifier.events`` (schema version 1).

A webhook message's final outcome is one event (``succeeded`` or ``failed``, not one per
attempt), in the stream of its endpoint; an endpoint being disabled is one too. Customer
notifications report each (event, channel, recipient) once.
"""

from __future__ import annotations

from typing import ClassVar

from waybill.common.contracts.event import DomainEvent
from waybill.common.registry import EventRegistry


class NotifierEvent(DomainEvent):
    service: ClassVar[str] = "notifier"


class WebhookDeliverySucceeded(NotifierEvent):
    event_type: ClassVar[str] = "webhook.delivery_succeeded"
    endpoint_id: str
    message_id: str
    event_type_delivered: str
    attempts: int


class WebhookDeliveryFailed(NotifierEvent):
    event_type: ClassVar[str] = "webhook.delivery_failed"
    endpoint_id: str
    message_id: str
    event_type_delivered: str
    attempts: int
    error_class: str | None = None
    status_code: int | None = None


class WebhookEndpointDisabled(NotifierEvent):
    event_type: ClassVar[str] = "webhook.endpoint_disabled"
    endpoint_id: str
    reason: str


class NotificationSent(NotifierEvent):
    event_type: ClassVar[str] = "notification.sent"
    notification_id: str
    order_id: str
    channel: str
    template: str


class NotificationFailed(NotifierEvent):
    event_type: ClassVar[str] = "notification.failed"
    notification_id: str
    order_id: str
    channel: str
    template: str
    reason: str


NOTIFIER_EVENTS: tuple[type[NotifierEvent], ...] = (
    WebhookDeliverySucceeded,
    WebhookDeliveryFailed,
    WebhookEndpointDisabled,
    NotificationSent,
    NotificationFailed,
)


def register(registry: EventRegistry) -> EventRegistry:
    return registry.add(*NOTIFIER_EVENTS)
