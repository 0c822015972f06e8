"""Events of the orders service (schema version 1 unless a class says otherwise): the order
events are published on ``waybill.orders.events``; the inventory events are private to
orders' own event store (its stock streams: how it reserves units, not part of the contract
between services)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from waybill.common.contracts.event import DomainEvent
from waybill.common.registry import EventRegistry, Upcaster


class OrderEvent(DomainEvent):
    """Base of every orders event: produced by the orders service."""

    service: ClassVar[str] = "orders"


class InventoryEvent(OrderEvent):
    """Base of the stock streams' events: private to the orders service (never on Kafka)."""

    public: ClassVar[bool] = False


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    email: str
    phone: str | None = None


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    quantity: int
    unit_price_cents: int


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)
    line1: str
    city: str
    postal_code: str
    country: str


class OrderPlaced(OrderEvent):
    event_type: ClassVar[str] = "order.placed"
    order_id: str
    customer: Customer
    items: tuple[LineItem, ...]
    currency: str
    total_cents: int
    shipping_address: Address
    payment_method: str
    expires_at: datetime


def _order_paid_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 carried neither the contact nor the address; nothing can recover them from
    the event alone, so they are None (a consumer that needs them says so: shipping holds
    such a shipment back, see its handlers)."""
    return {
        **data,
        "customer": data.get("customer"),
        "shipping_address": data.get("shipping_address"),
    }


class OrderPaid(OrderEvent):
    """The order is paid. Version 2 carries what the services downstream need (the shipping
    address, the customer's contact), so shipping and the notifier keep no copy of
    ``order.placed``; both are None only in an event upcast from version 1."""

    event_type: ClassVar[str] = "order.paid"
    schema_version: ClassVar[int] = 2
    upcasters: ClassVar[Mapping[int, Upcaster]] = MappingProxyType({1: _order_paid_v1_to_v2})
    order_id: str
    payment_id: str
    customer: Customer | None
    shipping_address: Address | None


class OrderPaymentFailed(OrderEvent):
    event_type: ClassVar[str] = "order.payment_failed"
    order_id: str
    payment_id: str | None = None
    reason: str


class OrderCancelled(OrderEvent):
    event_type: ClassVar[str] = "order.cancelled"
    order_id: str
    reason: str | None = None


class OrderExpired(OrderEvent):
    event_type: ClassVar[str] = "order.expired"
    order_id: str


class OrderShipped(OrderEvent):
    event_type: ClassVar[str] = "order.shipped"
    order_id: str
    shipment_id: str


class OrderDelivered(OrderEvent):
    event_type: ClassVar[str] = "order.delivered"
    order_id: str
    shipment_id: str


class OrderReturned(OrderEvent):
    event_type: ClassVar[str] = "order.returned"
    order_id: str
    shipment_id: str


class StockSet(InventoryEvent):
    event_type: ClassVar[str] = "inventory.stock_set"
    sku: str
    available: int


class StockReserved(InventoryEvent):
    event_type: ClassVar[str] = "inventory.reserved"
    sku: str
    order_id: str
    quantity: int


class StockReleased(InventoryEvent):
    event_type: ClassVar[str] = "inventory.released"
    sku: str
    order_id: str
    quantity: int


class StockCommitted(InventoryEvent):
    """Reserved units left the shelf for good (the order was paid)."""

    event_type: ClassVar[str] = "inventory.committed"
    sku: str
    order_id: str
    quantity: int


ORDER_EVENTS: tuple[type[OrderEvent], ...] = (
    OrderPlaced,
    OrderPaid,
    OrderPaymentFailed,
    OrderCancelled,
    OrderExpired,
    OrderShipped,
    OrderDelivered,
    OrderReturned,
)
INVENTORY_EVENTS: tuple[type[OrderEvent], ...] = (
    StockSet,
    StockReserved,
    StockReleased,
    StockCommitted,
)


def register(registry: EventRegistry) -> EventRegistry:
    """Add every event the orders service appends (its order and its stock streams)."""
    return registry.add(*ORDER_EVENTS, *INVENTORY_EVENTS)
