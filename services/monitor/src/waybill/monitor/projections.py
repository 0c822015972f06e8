"""The read models, projected from consumed events: one table of what each event type does.

Each read model row belongs to one stream (or one message) and keeps the sequence of the event
that last set its status. An event applies like this (``repository.project``):

- its ``status`` wins only if its sequence is newer than the row's: a reordered older event
  never moves a status back;
- its facts that do not depend on order fill in what is still missing (a payment's provider
  and currency, a notification's channel) whatever its sequence;
- an event without a status of its own (an assignment accepted) only fills in its facts;
- an agent's events each carry its whole profile: the newest sequence sets all of it;
- amounts are facts of their own event: a capture sets the captured amount, each refund adds
  its own; the inbox (the event id is ``consumed_events``' key) makes each count once.

A redelivered event never reaches this module: its ``consumed_events`` row exists already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts import notifier, orders, payments, shipping
from waybill.monitor import repository, tables


@dataclass(frozen=True)
class Projected:
    """What one event means for one read model row."""

    table: Table
    key: str  # the row's key (stream id or message id)
    status: str | None
    facts: dict[str, Any]  # filled in when missing (``fill``) or added (``add``)


@dataclass(frozen=True)
class StreamEvent:
    """The envelope facts a projection needs besides the event's data."""

    tenant_id: str
    subject: str
    sequence: int
    time: datetime


Rule = Callable[[StreamEvent, Any], Projected]


def _status(table: Table, status: str) -> Rule:
    return lambda e, _: Projected(table, e.subject, status, {})


def _payment(status: str) -> Rule:
    def rule(e: StreamEvent, event: Any) -> Projected:
        facts: dict[str, Any] = {}
        if isinstance(event, payments.PaymentCreated | payments.PaymentCaptured):
            facts = {"provider": event.provider, "currency": event.currency}
        if isinstance(event, payments.PaymentCaptured):
            facts["captured_cents"] = event.amount_cents
        if isinstance(event, payments.PaymentRefunded):
            facts["refunded_cents"] = event.amount_cents
        return Projected(tables.payment_states, e.subject, status, facts)

    return rule


def _webhook(status: str) -> Rule:
    return lambda e, event: Projected(
        tables.webhook_messages,
        event.message_id,
        status,
        {"endpoint_id": event.endpoint_id, "at": e.time},
    )


def _notification(status: str) -> Rule:
    return lambda e, event: Projected(
        tables.notification_states, event.notification_id, status, {"channel": event.channel}
    )


def _shipment(status: str | None) -> Rule:
    """A shipment's status; its postal code and agent fill in from whichever event names them
    first (the capacity view counts them as shipping does)."""

    def rule(e: StreamEvent, event: Any) -> Projected:
        facts = {
            name: getattr(event, name)
            for name in ("postal_code", "agent_id")
            if getattr(event, name, None) is not None
        }
        return Projected(tables.shipment_states, e.subject, status, facts)

    return rule


def _agent(e: StreamEvent, event: Any) -> Projected:
    return Projected(
        tables.agent_states,
        event.agent_id,
        "active" if event.active else "inactive",
        {
            "name": event.name,
            "capacity": event.capacity,
            "service_zip_codes": list(event.service_zip_codes),
        },
    )


_orders = tables.order_states
# The one table: event class -> what it does to which read model. Types not here (stock,
# offers, declines, SLA breaches, ...) are kept in consumed_events and the feed, and project
# nothing.
RULES: dict[type[BaseModel], Rule] = {
    orders.OrderPlaced: _status(_orders, "pending_payment"),
    orders.OrderPaid: _status(_orders, "paid"),
    orders.OrderPaymentFailed: _status(_orders, "payment_failed"),
    orders.OrderCancelled: _status(_orders, "cancelled"),
    orders.OrderExpired: _status(_orders, "expired"),
    orders.OrderShipped: _status(_orders, "shipped"),
    orders.OrderDelivered: _status(_orders, "delivered"),
    orders.OrderReturned: _status(_orders, "returned"),
    shipping.ShipmentCreated: _shipment("pending"),
    shipping.ShipmentAssignmentAccepted: _shipment(None),
    shipping.ShipmentInTransit: _shipment("in_transit"),
    shipping.ShipmentDelivered: _shipment("delivered"),
    shipping.ShipmentFailed: _shipment("failed"),
    shipping.ShipmentReturned: _shipment("returned"),
    shipping.ShipmentCancelled: _shipment("cancelled"),
    shipping.AgentRegistered: _agent,
    shipping.AgentUpdated: _agent,
    payments.PaymentCreated: _payment("pending"),
    payments.PaymentProcessing: _payment("processing"),
    payments.PaymentCaptured: _payment("captured"),
    payments.PaymentFailed: _payment("failed"),
    payments.PaymentRefunded: _payment("refunded"),
    notifier.WebhookDeliverySucceeded: _webhook("succeeded"),
    notifier.WebhookDeliveryFailed: _webhook("failed"),
    notifier.NotificationSent: _notification("sent"),
    notifier.NotificationFailed: _notification("failed"),
}


async def project(conn: AsyncConnection, event: StreamEvent, payload: BaseModel) -> None:
    """Apply ``payload`` (the typed event) to its read model, if it has one."""
    rule = RULES.get(type(payload))
    if rule is None:
        return
    projected = rule(event, payload)
    await repository.project(
        conn,
        projected.table,
        tenant_id=event.tenant_id,
        key=projected.key,
        sequence=event.sequence,
        status=projected.status,
        facts=projected.facts,
    )
