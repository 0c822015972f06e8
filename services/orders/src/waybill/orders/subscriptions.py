"""What the orders service consumes: the one table, event class -> handler.

Payment outcomes move the order along the saga; every other payments event (created,
processing, refunded) is not subscribed, so the consumer skips it by its ``ce_type`` header
without decoding it or opening a transaction. The registry the consumer decodes with, its
topics and the AsyncAPI subscribe side all come from this table
(``waybill.common.consumer.subscriptions``).

Handlers are thin: translate the event into an order command and run it inside the consumer's
transaction (the inbox row commits with the order's new events, projections and outbox rows).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.contracts.payments import PaymentCaptured, PaymentFailed
from waybill.common.eventstore import Caller
from waybill.orders.domain import order as o
from waybill.orders.handlers import OrderHandlers

CONSUMER_GROUP = "orders"


def command_for(event: PaymentCaptured | PaymentFailed) -> tuple[str, o.Command]:
    """The (order id, command) a payment outcome asks for."""
    match event:
        case PaymentCaptured():
            return event.order_id, o.MarkPaid(payment_id=event.payment_id)
        case PaymentFailed():
            return event.order_id, o.MarkPaymentFailed(
                reason=f"{event.code}: {event.reason}", payment_id=event.payment_id
            )


def subscriptions(handlers: OrderHandlers) -> Subscriptions:
    async def apply_payment_outcome(
        conn: AsyncConnection, caller: Caller, event: PaymentCaptured | PaymentFailed
    ) -> None:
        order_id, command = command_for(event)
        await handlers.apply_in(conn, caller, order_id, command)

    return Subscriptions(
        CONSUMER_GROUP,
        {PaymentCaptured: apply_payment_outcome, PaymentFailed: apply_payment_outcome},
    )
