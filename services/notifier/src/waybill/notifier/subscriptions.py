"""What the notifier consumes: every public event of orders, payments and shipping, each fanned
out to the tenant's webhook endpoints that want its type; the events that concern the customer
(``domain.messages.NOTIFYING``) also become customer notifications, in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.subscriptions import EventHandler, Subscriptions
from waybill.common.contracts import orders, payments, shipping
from waybill.common.contracts.event import DomainEvent
from waybill.common.eventstore import Caller
from waybill.notifier.customers import CustomerNotifications
from waybill.notifier.domain.messages import NOTIFYING
from waybill.notifier.handlers import NotifierHandlers

CONSUMER_GROUP = "notifier"
DELIVERED: tuple[type[DomainEvent], ...] = tuple(
    model
    for model in (*orders.ORDER_EVENTS, *payments.PAYMENT_EVENTS, *shipping.SHIPPING_EVENTS)
    if model.public
)


def subscriptions(
    handlers: NotifierHandlers, customers: CustomerNotifications | None = None
) -> Subscriptions:
    async def deliver_to_endpoints(
        conn: AsyncConnection, caller: Caller, event: DomainEvent
    ) -> None:
        # The order an event concerns orders its deliveries to one endpoint (every event type
        # delivered carries one).
        subject = str(getattr(event, "order_id", None) or caller.correlation_id)
        await handlers.fan_out(conn, caller, event, subject)

    async def deliver_and_notify(conn: AsyncConnection, caller: Caller, event: DomainEvent) -> None:
        await deliver_to_endpoints(conn, caller, event)
        assert customers is not None
        await customers.on_event(conn, caller, event)

    table: dict[type[DomainEvent], EventHandler] = dict.fromkeys(DELIVERED, deliver_to_endpoints)
    if customers is not None:
        table.update(dict.fromkeys(NOTIFYING, deliver_and_notify))
    return Subscriptions(CONSUMER_GROUP, table)
