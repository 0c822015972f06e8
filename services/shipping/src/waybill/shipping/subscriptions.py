"""What shipping consumes: the one table (event class -> handler), and nothing else.

- ``order.paid`` (v2: with the address; v1 upcast) -> the order's one shipment, offered at once;
- ``order.cancelled`` and ``payment.refunded`` -> a still-pending shipment is cancelled and its
  open offer withdrawn (a refund without a cancellation is an admin's refund of a paid order).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.contracts.orders import OrderCancelled, OrderPaid
from waybill.common.contracts.payments import PaymentRefunded
from waybill.common.eventstore import Caller
from waybill.shipping.handlers import ShippingHandlers

CONSUMER_GROUP = "shipping"


def subscriptions(handlers: ShippingHandlers) -> Subscriptions:
    async def open_shipment(conn: AsyncConnection, caller: Caller, event: OrderPaid) -> None:
        await handlers.open_shipment(conn, caller, event)

    async def order_cancelled(conn: AsyncConnection, caller: Caller, event: OrderCancelled) -> None:
        await handlers.cancel_for_order(conn, caller, event.order_id, "order_cancelled")

    async def payment_refunded(
        conn: AsyncConnection, caller: Caller, event: PaymentRefunded
    ) -> None:
        await handlers.cancel_for_order(conn, caller, event.order_id, "payment_refunded")

    return Subscriptions(
        CONSUMER_GROUP,
        {
            OrderPaid: open_shipment,
            OrderCancelled: order_cancelled,
            PaymentRefunded: payment_refunded,
        },
    )
