"""What the orders service consumes: the one table, event class -> handler.

Payment outcomes move the order along the saga, and so does the shipment's news (sent out,
delivered, returned); every other payments or shipping event (created, processing, refunded,
offers, failed attempts, ...) is not subscribed, so the consumer skips it by its ``ce_type``
header without decoding it or opening a transaction. The registry the consumer decodes with,
its topics (payments' and shipping's) and the AsyncAPI subscribe side all come from this table
(``waybill.common.consumer.subscriptions``).

Handlers are thin: translate the event into an order command and run it inside the consumer's
transaction (the inbox row commits with the order's new events, projections and outbox rows).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.subscriptions import EventHandler, Subscriptions
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.payments import PaymentCaptured, PaymentFailed
from waybill.common.contracts.shipping import ShipmentDelivered, ShipmentInTransit, ShipmentReturned
from waybill.common.eventstore import Caller
from waybill.orders.domain import order as o
from waybill.orders.handlers import OrderHandlers

CONSUMER_GROUP = "orders"

ShipmentNews = ShipmentInTransit | ShipmentDelivered | ShipmentReturned

# The order command each followed shipment event asks for. A shipment sent out again
# (retry_delivery) is another shipment.in_transit: MarkShipped again.
SHIPMENT_COMMANDS: dict[type[ShipmentNews], type[o.ShipmentCommand]] = {
    ShipmentInTransit: o.MarkShipped,
    ShipmentDelivered: o.MarkDelivered,
    ShipmentReturned: o.MarkReturned,
}


def command_for(event: PaymentCaptured | PaymentFailed) -> tuple[str, o.Command]:
    """The (order id, command) a payment outcome asks for."""
    match event:
        case PaymentCaptured():
            return event.order_id, o.MarkPaid(payment_id=event.payment_id)
        case PaymentFailed():
            return event.order_id, o.MarkPaymentFailed(
                reason=f"{event.code}: {event.reason}", payment_id=event.payment_id
            )


def shipment_command_for(event: ShipmentNews) -> tuple[str, o.ShipmentCommand]:
    """The (order id, command) a shipment's news asks for."""
    return event.order_id, SHIPMENT_COMMANDS[type(event)](shipment_id=event.shipment_id)


def subscriptions(handlers: OrderHandlers) -> Subscriptions:
    async def apply_payment_outcome(
        conn: AsyncConnection, caller: Caller, event: PaymentCaptured | PaymentFailed
    ) -> None:
        order_id, command = command_for(event)
        await handlers.apply_in(conn, caller, order_id, command)

    async def follow_shipment(conn: AsyncConnection, caller: Caller, event: ShipmentNews) -> None:
        order_id, command = shipment_command_for(event)
        await handlers.follow_shipment(conn, caller, order_id, command)

    table: dict[type[DomainEvent], EventHandler] = {
        PaymentCaptured: apply_payment_outcome,
        PaymentFailed: apply_payment_outcome,
    }
    table.update(dict.fromkeys(SHIPMENT_COMMANDS, follow_shipment))
    return Subscriptions(CONSUMER_GROUP, table)
