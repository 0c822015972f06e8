"""What the notifier consumes: every public event of orders, payments and shipping, each fanned
out to the tenant's webhook endpoints that want its type (customer email and SMS follow the
same table in the next part of issue 10)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.subscriptions import EventHandler, Subscriptions
from waybill.common.contracts import orders, payments, shipping
from waybill.common.contracts.event import DomainEvent
from waybill.common.eventstore import Caller
from waybill.notifier.handlers import NotifierHandlers

CONSUMER_GROUP = "notifier"
DELIVERED: tuple[type[DomainEvent], ...] = tuple(
    model
    for model in (*orders.ORDER_EVENTS, *payments.PAYMENT_EVENTS, *shipping.SHIPPING_EVENTS)
    if model.public
)


def subscriptions(handlers: NotifierHandlers) -> Subscriptions:
    async def deliver_to_endpoints(
        conn: AsyncConnection, caller: Caller, event: DomainEvent
    ) -> None:
        # The order an event concerns orders its deliveries to one endpoint (every event type
        # delivered carries one).
        subject = str(getattr(event, "order_id", None) or caller.correlation_id)
        await handlers.fan_out(conn, caller, event, subject)

    table: dict[type[DomainEvent], EventHandler] = dict.fromkeys(DELIVERED, deliver_to_endpoints)
    return Subscriptions(CONSUMER_GROUP, table)
