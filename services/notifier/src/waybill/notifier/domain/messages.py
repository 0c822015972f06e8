"""Customer notifications as rules: which event becomes which message, how urgent it is, on
which channels, and how a recipient is shown (masked) outside the notifier. Pure: no I/O.

The event -> template table is CONTRACT.md § notifier, one row per template. Priorities:
``urgent`` where the customer must act now (a failed payment, a failed delivery); ``high``
where the message carries the delivery code the customer needs at the door (``shipped``,
``delivery_retried``: late is nearly as bad as never); ``normal`` for confirmations the
customer waits for (``order_placed``, ``payment_received``) and for ``returned``; ``low`` for
``delivered``, which tells the customer what they have just seen happen. Aging
(``WAYBILL_NOTIFIER_AGING_S``) lifts a waiting job one level per period, so low never starves.

SMS goes where the message is worth a text (the two with a delivery code, and a failed
delivery) and only where the customer gave a phone; every other message is email only, and an
email that fails for good falls back to an SMS of the same template.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.orders import OrderPaid, OrderPaymentFailed, OrderPlaced
from waybill.common.contracts.shipping import (
    DeliveryCodeReset,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentInTransit,
    ShipmentReturned,
)


class Channel(enum.StrEnum):
    email = "email"
    sms = "sms"


class Priority(enum.StrEnum):
    urgent = "urgent"
    high = "high"
    normal = "normal"
    low = "low"

    @property
    def rank(self) -> int:
        """The work queue's integer priority (higher is claimed first)."""
        return RANKS[self]


RANKS: Mapping[Priority, int] = {
    Priority.urgent: 3,
    Priority.high: 2,
    Priority.normal: 1,
    Priority.low: 0,
}


@dataclass(frozen=True)
class Rule:
    template: str
    priority: Priority
    channels: tuple[Channel, ...]


EMAIL = (Channel.email,)
EMAIL_AND_SMS = (Channel.email, Channel.sms)

# CONTRACT.md § notifier: every template and the event it answers.
RULES: Mapping[str, Rule] = {
    "order_placed": Rule("order_placed", Priority.normal, EMAIL),
    "payment_received": Rule("payment_received", Priority.normal, EMAIL),
    "payment_failed": Rule("payment_failed", Priority.urgent, EMAIL),
    "shipped": Rule("shipped", Priority.high, EMAIL_AND_SMS),
    "delivered": Rule("delivered", Priority.low, EMAIL),
    "delivery_failed": Rule("delivery_failed", Priority.urgent, EMAIL_AND_SMS),
    "returned": Rule("returned", Priority.normal, EMAIL),
    "delivery_retried": Rule("delivery_retried", Priority.high, EMAIL_AND_SMS),
    # Not in the contract's table: an admin's reset-code issues a new code the customer needs
    # at the door, so the customer gets it the way they got the first one.
    "delivery_code_reset": Rule("delivery_code_reset", Priority.high, EMAIL_AND_SMS),
}

# The event classes that notify the customer (the consumer's subscription table reads this).
NOTIFYING: tuple[type[DomainEvent], ...] = (
    OrderPlaced,
    OrderPaid,
    OrderPaymentFailed,
    ShipmentInTransit,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentReturned,
    DeliveryCodeReset,
)


def template_of(event: DomainEvent) -> str | None:
    """The template an event is announced with (None: the customer is not told)."""
    match event:
        case OrderPlaced():
            return "order_placed"
        case OrderPaid():
            return "payment_received"
        case OrderPaymentFailed():
            return "payment_failed"
        case ShipmentInTransit(attempt=1):
            return "shipped"
        case ShipmentInTransit():
            return "delivery_retried"
        case ShipmentDelivered():
            return "delivered"
        case ShipmentFailed():
            return "delivery_failed"
        case ShipmentReturned():
            return "returned"
        case DeliveryCodeReset():
            return "delivery_code_reset"
    return None


def rule_of(event: DomainEvent) -> Rule | None:
    template = template_of(event)
    return RULES[template] if template else None


def context_of(event: DomainEvent) -> dict[str, Any]:
    """What the templates may show, kept with the notification until it is sent. The delivery
    code stays sealed here (``delivery_code_sealed``); only rendering unseals it."""
    data = event.model_dump(mode="json")
    keep = ("order_id", "shipment_id", "attempt", "reason", "currency", "total_cents")
    context = {k: data[k] for k in keep if data.get(k) is not None}
    if isinstance(event, ShipmentInTransit | DeliveryCodeReset):
        context["delivery_code_sealed"] = event.delivery_code_sealed
    return context


def mask_email(address: str) -> str:
    """``jane@example.com`` -> ``j***@example.com``: enough to recognise, not to harvest."""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """``+15551234567`` -> ``+*******4567``: the last four digits only."""
    digits = number.lstrip("+")
    shown = digits[-4:] if len(digits) > 4 else ""
    return ("+" if number.startswith("+") else "") + "*" * (len(digits) - len(shown)) + shown


def mask(channel: str, recipient: str) -> str:
    return mask_email(recipient) if channel == Channel.email else mask_phone(recipient)


def parse_delays(text: str) -> dict[str, float]:
    """``"delivered=3600,returned=0"`` -> seconds to hold each template back (``send_at``).
    Unknown templates and negative or non-numeric delays are refused (a typo must not silently
    send at once)."""
    delays: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in RULES:
            raise ValueError(f"template delay {item!r}: expected <template>=<seconds>")
        seconds = float(value)
        if seconds < 0:
            raise ValueError(f"template delay {item!r}: negative")
        delays[name] = seconds
    return delays
