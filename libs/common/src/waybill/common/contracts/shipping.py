"""Events of the shipping service, published on ``waybill.shipping.events`` (schema version 1).

Each shipment is one stream (key = shipment id): its creation, every offer to delivery agents
(one assignment id per wave), every decline, expiry and acceptance, and its delivery states.
The delivery code travels sealed (encrypted with the key shipping and the notifier share) in
``delivery_code_sealed``, beside its keyed hash: redacted fields, which no webhook, monitor
view or log shows.
A code that fails the check is recorded in the stream too (``shipment.delivery_code_rejected``,
private: the lock after five wrong tries must survive a restart and fold from the stream).

Each delivery agent is a stream too (key = agent id): its profile as registered and after each
change (``agent.registered``, ``agent.updated``), so a reader such as the monitor can follow
capacity without shipping's tables. The agent's API key (or its hash) is never in them.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from waybill.common.contracts.event import DomainEvent
from waybill.common.registry import EventRegistry

# The delivery code, sealed for the notifier (Fernet) and keyed-hashed for shipping's check
# (HMAC-SHA256): neither may leave the two services (``DomainEvent.redacted``).
SEALED_CODE = frozenset({"delivery_code_sealed", "delivery_code_hash"})

# The shipment statuses in which an assigned shipment counts against its agent's capacity, and
# the load of a postal code (shipping's ``domain.shipment.ACTIVE`` is built from it).
ACTIVE_SHIPMENT_STATUSES: tuple[str, ...] = ("pending", "in_transit", "failed")
# A postal code whose utilisation is above this is a hotspot (CONTRACT.md § shipping).
HOTSPOT_UTILISATION = 0.7

# Why a delivery attempt failed (CONTRACT.md § shipping, ``mark_failed``).
FAILURE_REASONS = (
    "RECIPIENT_ABSENT",
    "ADDRESS_NOT_FOUND",
    "REFUSED",
    "DAMAGED",
    "ACCESS_RESTRICTED",
    "WEATHER",
    "OTHER",
)


class ShippingEvent(DomainEvent):
    """Base of every shipping event: produced by the shipping service."""

    service: ClassVar[str] = "shipping"


class ShipmentCreated(ShippingEvent):
    event_type: ClassVar[str] = "shipment.created"
    shipment_id: str
    order_id: str
    postal_code: str | None  # None: the order.paid (v1) carried no address; never offered
    sla_due_at: datetime


class ShipmentAssignmentOffered(ShippingEvent):
    """One wave of offers: every agent in ``agent_ids`` sees the same ``assignment_id``."""

    event_type: ClassVar[str] = "shipment.assignment_offered"
    shipment_id: str
    assignment_id: str
    wave: int
    agent_ids: tuple[str, ...]
    expires_at: datetime


class ShipmentAssignmentDeclined(ShippingEvent):
    event_type: ClassVar[str] = "shipment.assignment_declined"
    shipment_id: str
    assignment_id: str
    agent_id: str
    reason: str | None = None


class ShipmentAssignmentExpired(ShippingEvent):
    """The wave's offer ran out with nobody accepting (or everybody declining)."""

    event_type: ClassVar[str] = "shipment.assignment_expired"
    shipment_id: str
    assignment_id: str
    wave: int


class ShipmentAssignmentAccepted(ShippingEvent):
    event_type: ClassVar[str] = "shipment.assignment_accepted"
    shipment_id: str
    order_id: str
    assignment_id: str
    agent_id: str


class ShipmentInTransit(ShippingEvent):
    """Sent out (``ship``) or sent out again (``retry_delivery``), with a new delivery code."""

    event_type: ClassVar[str] = "shipment.in_transit"
    redacted: ClassVar[frozenset[str]] = SEALED_CODE
    shipment_id: str
    order_id: str
    agent_id: str
    attempt: int
    delivery_code_sealed: str
    delivery_code_hash: str
    notes: str | None = None


class ShipmentDelivered(ShippingEvent):
    event_type: ClassVar[str] = "shipment.delivered"
    shipment_id: str
    order_id: str
    agent_id: str
    delivered_at: datetime
    notes: str | None = None


class ShipmentFailed(ShippingEvent):
    event_type: ClassVar[str] = "shipment.failed"
    shipment_id: str
    order_id: str
    agent_id: str | None
    reason: str
    notes: str | None = None


class ShipmentReturned(ShippingEvent):
    event_type: ClassVar[str] = "shipment.returned"
    shipment_id: str
    order_id: str
    agent_id: str | None
    notes: str | None = None


class ShipmentCancelled(ShippingEvent):
    """A pending shipment whose order was cancelled or refunded; open offers are withdrawn."""

    event_type: ClassVar[str] = "shipment.cancelled"
    shipment_id: str
    order_id: str
    reason: str
    withdrawn_assignment_ids: tuple[str, ...] = ()


class ShipmentSlaBreached(ShippingEvent):
    event_type: ClassVar[str] = "shipment.sla_breached"
    shipment_id: str
    order_id: str
    sla_due_at: datetime
    status: str


class DeliveryCodeReset(ShippingEvent):
    """An admin unlocked the delivery code check; the customer gets a new code."""

    event_type: ClassVar[str] = "shipment.delivery_code_reset"
    redacted: ClassVar[frozenset[str]] = SEALED_CODE
    shipment_id: str
    order_id: str
    delivery_code_sealed: str
    delivery_code_hash: str


class DeliveryCodeRejected(ShippingEvent):
    """A wrong delivery code was given (private: counts towards the lock)."""

    event_type: ClassVar[str] = "shipment.delivery_code_rejected"
    public: ClassVar[bool] = False
    shipment_id: str
    agent_id: str


class AgentShift(BaseModel):
    """A weekly shift in UTC (weekday 0 = Monday; an end before the start runs past midnight)."""

    model_config = ConfigDict(frozen=True)
    weekday: int
    start: str  # HH:MM
    end: str  # HH:MM


class AgentProfile(ShippingEvent):
    """An agent's whole profile after the change: a reader needs no earlier event of the stream
    to know it (the newest sequence wins)."""

    agent_id: str
    name: str
    capacity: int
    service_zip_codes: tuple[str, ...]
    active: bool
    shifts: tuple[AgentShift, ...] = ()


class AgentRegistered(AgentProfile):
    """``POST /agents``: a new delivery agent (active)."""

    event_type: ClassVar[str] = "agent.registered"


class AgentUpdated(AgentProfile):
    """``PATCH /agents/{id}``: its profile after the change."""

    event_type: ClassVar[str] = "agent.updated"


SHIPPING_EVENTS: tuple[type[ShippingEvent], ...] = (
    ShipmentCreated,
    ShipmentAssignmentOffered,
    ShipmentAssignmentDeclined,
    ShipmentAssignmentExpired,
    ShipmentAssignmentAccepted,
    ShipmentInTransit,
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentReturned,
    ShipmentCancelled,
    ShipmentSlaBreached,
    DeliveryCodeReset,
    DeliveryCodeRejected,
)


# The agent directory's events: not news of a shipment (the notifier does not fan them out),
# read by the monitor's capacity view.
AGENT_EVENTS: tuple[type[ShippingEvent], ...] = (AgentRegistered, AgentUpdated)


def register(registry: EventRegistry) -> EventRegistry:
    """Add every event the shipping service appends."""
    return registry.add(*SHIPPING_EVENTS, *AGENT_EVENTS)
