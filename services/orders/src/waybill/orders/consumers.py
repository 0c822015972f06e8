"""Kafka subscribers of the orders service: payment outcomes move the order along the saga.

Thin: translate an event into an order command and run it inside the consumer's transaction
(the inbox row commits with the order's new events, projections and outbox rows).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.payments import PaymentCaptured, PaymentFailed
from waybill.common.envelope import EventEnvelope
from waybill.orders.caller import Caller
from waybill.orders.domain import order as o
from waybill.orders.handlers import OrderHandlers

CONSUMER_GROUP = "orders"


def command_for(event: Any) -> tuple[str, o.Command] | None:
    """The (order id, command) an incoming event asks for, or None if orders ignores it."""
    match event:
        case PaymentCaptured():
            return event.order_id, o.MarkPaid(payment_id=event.payment_id)
        case PaymentFailed():
            return event.order_id, o.MarkPaymentFailed(
                reason=f"{event.code}: {event.reason}", payment_id=event.payment_id
            )
    return None


def payment_outcome_handler(handlers: OrderHandlers) -> Any:
    async def handle(conn: AsyncConnection, envelope: EventEnvelope, event: Any) -> None:
        wanted = command_for(event)
        if wanted is None:
            return
        order_id, command = wanted
        caller = Caller(
            tenant_id=envelope.tenant_id,
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.id),
            traceparent=envelope.traceparent,
        )
        await handlers.apply_in(conn, caller, order_id, command)

    return handle
