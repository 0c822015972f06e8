"""The order aggregate as a decider: ``decide(state, command) -> events``, ``evolve(state, event)``.

Status machine (anything else is INVALID_TRANSITION):

    (new)            --place-->          pending_payment
    pending_payment  --pay-->            paid
                     --fail payment-->   payment_failed
                     --cancel-->         cancelled
                     --expire-->         expired
    paid             --ship-->           shipped
                     --cancel-->         cancelled
                     --return-->         returned  (failed before it went out, sent back)
    shipped          --deliver-->        delivered
                     --return-->         returned
    delivered        --return-->         returned
    returned         --ship-->           shipped   (sent out again: retry_delivery)

Following the shipment (``MarkShipped``, ``MarkDelivered``, ``MarkReturned``: commands that
come from shipping's events, never from a client). They must not dead-letter on an ordinary
race, so each outcome is decided here, once:

- the order already has the status the shipment reports -> no events (the shipment was sent out
  again after a failed attempt while the order stayed ``shipped``, or the same news twice);
- the order was cancelled meanwhile (``ignores_shipment``: the agent set off while the
  cancellation was on its way; shipping withdraws only a pending shipment) -> no events; the
  order keeps what its customer was told (cancelled, refunded) and the handler logs
  ``order_shipment_ignored`` for an operator, because retrying could never change the answer;
- a returned order whose shipment goes out again -> ``shipped``; a shipment returned to the
  sender before it ever went out (failed while pending) -> the paid order is ``returned``;
- anything else (news for an unpaid order, delivered before shipped, shipped after delivered)
  -> INVALID_TRANSITION, dead-lettered: one shipment's events arrive in order (one stream, one
  partition), so such a gap means a lost or mis-addressed event that an operator must see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from waybill.common.contracts.orders import (
    Address,
    Customer,
    LineItem,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderExpired,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
    OrderReturned,
    OrderShipped,
)
from waybill.orders.domain.errors import (
    CannotCancelAfterShipping,
    InvalidOrder,
    InvalidTransition,
)


class OrderStatus(StrEnum):
    new = "new"  # no events yet; never visible through the API
    pending_payment = "pending_payment"
    paid = "paid"
    shipped = "shipped"
    delivered = "delivered"
    returned = "returned"
    cancelled = "cancelled"
    payment_failed = "payment_failed"
    expired = "expired"


# The one table of allowed moves; the decider and the property tests both read it.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.new: frozenset({OrderStatus.pending_payment}),
    OrderStatus.pending_payment: frozenset(
        {
            OrderStatus.paid,
            OrderStatus.payment_failed,
            OrderStatus.cancelled,
            OrderStatus.expired,
        }
    ),
    # paid -> returned: the shipment failed before it went out and went back to the sender.
    OrderStatus.paid: frozenset({OrderStatus.shipped, OrderStatus.returned, OrderStatus.cancelled}),
    OrderStatus.shipped: frozenset({OrderStatus.delivered, OrderStatus.returned}),
    OrderStatus.delivered: frozenset({OrderStatus.returned}),
    # Sent out again (the shipment's retry_delivery after its return).
    OrderStatus.returned: frozenset({OrderStatus.shipped}),
    OrderStatus.cancelled: frozenset(),
    OrderStatus.payment_failed: frozenset(),
    OrderStatus.expired: frozenset(),
}
# An order closed while its payment was still under way: a late payment outcome changes nothing.
CLOSED_BEFORE_PAYMENT = frozenset({OrderStatus.cancelled, OrderStatus.expired})
SHIPPED_OR_LATER = frozenset({OrderStatus.shipped, OrderStatus.delivered, OrderStatus.returned})
# Closed before its shipment moved: shipment news changes nothing (see the module docstring).
CLOSED_BEFORE_SHIPPING = frozenset({OrderStatus.cancelled})
# Statuses in which the order still holds a stock reservation (released on leaving them
# for cancelled / payment_failed / expired; committed on payment).
HOLDS_RESERVATION = frozenset({OrderStatus.pending_payment})
MAX_ITEMS = 100
MAX_QUANTITY = 10_000


@dataclass(frozen=True)
class Order:
    order_id: str
    status: OrderStatus = OrderStatus.new
    version: int = 0
    items: tuple[LineItem, ...] = ()
    total_cents: int = 0
    expires_at: datetime | None = None
    # Carried on order.paid (v2) for shipping and the notifier.
    customer: Customer | None = None
    shipping_address: Address | None = None


# --- commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaceOrder:
    order_id: str
    customer: Customer
    items: tuple[LineItem, ...]
    currency: str
    shipping_address: Address
    payment_method: str
    expires_at: datetime


@dataclass(frozen=True)
class MarkPaid:
    payment_id: str


@dataclass(frozen=True)
class MarkPaymentFailed:
    reason: str
    payment_id: str | None = None


@dataclass(frozen=True)
class CancelOrder:
    reason: str | None = None


@dataclass(frozen=True)
class ExpireOrder:
    now: datetime


@dataclass(frozen=True)
class MarkShipped:
    """The shipment went out (``ship``) or out again (``retry_delivery``)."""

    shipment_id: str
    target: ClassVar[OrderStatus] = OrderStatus.shipped
    shipment_status: ClassVar[str] = "in_transit"


@dataclass(frozen=True)
class MarkDelivered:
    """The shipment reached its recipient (``deliver``)."""

    shipment_id: str
    target: ClassVar[OrderStatus] = OrderStatus.delivered
    shipment_status: ClassVar[str] = "delivered"


@dataclass(frozen=True)
class MarkReturned:
    """The shipment went back to the sender (``return_to_sender``), sent out or not."""

    shipment_id: str
    target: ClassVar[OrderStatus] = OrderStatus.returned
    shipment_status: ClassVar[str] = "returned"


# A shipment's news as an order command: ``target`` is the order status it moves to,
# ``shipment_status`` the shipment's status it reports (for the log of an ignored one).
ShipmentCommand = MarkShipped | MarkDelivered | MarkReturned

Command = (
    PlaceOrder
    | MarkPaid
    | MarkPaymentFailed
    | CancelOrder
    | ExpireOrder
    | MarkShipped
    | MarkDelivered
    | MarkReturned
)


def decide(state: Order, command: Command) -> list[OrderEvent]:
    """The events ``command`` produces on ``state``, or a domain error. Pure."""
    match command:
        case PlaceOrder():
            _require(state, OrderStatus.pending_payment, "place")
            _validate_items(command.items)
            total = sum(i.quantity * i.unit_price_cents for i in command.items)
            return [
                OrderPlaced(
                    order_id=command.order_id,
                    customer=command.customer,
                    items=command.items,
                    currency=command.currency,
                    total_cents=total,
                    shipping_address=command.shipping_address,
                    payment_method=command.payment_method,
                    expires_at=command.expires_at,
                )
            ]
        case MarkPaid():
            if state.status is OrderStatus.paid:
                return []  # the same payment outcome again: nothing new to say
            if state.status in CLOSED_BEFORE_PAYMENT:
                return []  # payments refunds a charge for a closed order (it follows them too)
            _require(state, OrderStatus.paid, "mark paid")
            return [
                OrderPaid(
                    order_id=state.order_id,
                    payment_id=command.payment_id,
                    customer=state.customer,
                    shipping_address=state.shipping_address,
                )
            ]
        case MarkPaymentFailed():
            if state.status is OrderStatus.payment_failed or state.status in CLOSED_BEFORE_PAYMENT:
                return []
            _require(state, OrderStatus.payment_failed, "fail payment of")
            return [
                OrderPaymentFailed(
                    order_id=state.order_id, payment_id=command.payment_id, reason=command.reason
                )
            ]
        case CancelOrder():
            if state.status in SHIPPED_OR_LATER:
                raise CannotCancelAfterShipping(
                    f"order {state.order_id} is {state.status.value}; it can no longer be cancelled"
                )
            _require(state, OrderStatus.cancelled, "cancel")
            return [OrderCancelled(order_id=state.order_id, reason=command.reason)]
        case ExpireOrder():
            if state.status is not OrderStatus.pending_payment:
                return []  # paid, cancelled, ... in the meantime: nothing to expire
            if state.expires_at is not None and command.now < state.expires_at:
                return []
            return [OrderExpired(order_id=state.order_id)]
        case MarkShipped() | MarkDelivered() | MarkReturned():
            return _follow_shipment(state, command)
    raise TypeError(f"unknown command {command!r}")  # pragma: no cover - exhaustive match


_STATUS_AFTER: dict[type[OrderEvent], OrderStatus] = {
    OrderPlaced: OrderStatus.pending_payment,
    OrderPaid: OrderStatus.paid,
    OrderPaymentFailed: OrderStatus.payment_failed,
    OrderCancelled: OrderStatus.cancelled,
    OrderExpired: OrderStatus.expired,
    OrderShipped: OrderStatus.shipped,
    OrderDelivered: OrderStatus.delivered,
    OrderReturned: OrderStatus.returned,
}


def evolve(state: Order, event: OrderEvent) -> Order:
    """The state after ``event``. Pure; never raises for an event decide() produced."""
    status = _STATUS_AFTER[type(event)]
    state = replace(state, status=status, version=state.version + 1)
    if isinstance(event, OrderPlaced):
        state = replace(
            state,
            order_id=event.order_id,
            items=event.items,
            total_cents=event.total_cents,
            expires_at=event.expires_at,
            customer=event.customer,
            shipping_address=event.shipping_address,
        )
    return state


# The order event each shipment command appends.
_SHIPMENT_NEWS: dict[type[ShipmentCommand], type[OrderShipped | OrderDelivered | OrderReturned]]
_SHIPMENT_NEWS = {
    MarkShipped: OrderShipped,
    MarkDelivered: OrderDelivered,
    MarkReturned: OrderReturned,
}


def ignores_shipment(state: Order) -> bool:
    """Whether shipment news leaves the order as it is because it was closed first (a race
    with the order's own API, not an error: see the module docstring)."""
    return state.status in CLOSED_BEFORE_SHIPPING


def _follow_shipment(state: Order, command: ShipmentCommand) -> list[OrderEvent]:
    if state.status is command.target or ignores_shipment(state):
        return []
    _require(state, command.target, f"follow a shipment {command.shipment_status} for")
    return [_SHIPMENT_NEWS[type(command)](order_id=state.order_id, shipment_id=command.shipment_id)]


def fold(order_id: str, events: list[OrderEvent]) -> Order:
    state = Order(order_id=order_id)
    for event in events:
        state = evolve(state, event)
    return state


def releases_reservation(before: OrderStatus, after: OrderStatus) -> bool:
    """Leaving a reservation-holding status for a closed one gives the stock back."""
    return (
        before in HOLDS_RESERVATION
        and after not in HOLDS_RESERVATION
        and after is not OrderStatus.paid
    )


def _require(state: Order, target: OrderStatus, verb: str) -> None:
    if target not in TRANSITIONS[state.status]:
        raise InvalidTransition(f"cannot {verb} an order that is {state.status.value}")


def _validate_items(items: tuple[LineItem, ...]) -> None:
    if not items:
        raise InvalidOrder("an order needs at least one item")
    if len(items) > MAX_ITEMS:
        raise InvalidOrder(f"an order has at most {MAX_ITEMS} items")
    skus = [i.sku for i in items]
    if len(set(skus)) != len(skus):
        raise InvalidOrder("each sku may appear once per order; add up the quantities")
    for item in items:
        if not 0 < item.quantity <= MAX_QUANTITY:
            raise InvalidOrder(f"quantity of {item.sku} must be between 1 and {MAX_QUANTITY}")
        if item.unit_price_cents < 0:
            raise InvalidOrder(f"unit_price_cents of {item.sku} must not be negative")
