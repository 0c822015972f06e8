"""The stock of one sku as a decider: set stock, reserve for an order, release, commit.

Invariant (proved by property tests): ``available`` and ``reserved`` never go below zero,
and an order never holds two reservations of one sku (no double reserve on redelivery).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from waybill.common.contracts.orders import (
    OrderEvent,
    StockCommitted,
    StockReleased,
    StockReserved,
    StockSet,
)
from waybill.orders.domain.errors import InsufficientStock, InvalidOrder

MAX_STOCK = 1_000_000_000


@dataclass(frozen=True)
class Stock:
    sku: str
    available: int = 0
    version: int = 0
    reservations: dict[str, int] = field(default_factory=dict)  # order id -> units

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())


@dataclass(frozen=True)
class SetStock:
    available: int


@dataclass(frozen=True)
class Reserve:
    order_id: str
    quantity: int


@dataclass(frozen=True)
class Release:
    order_id: str


@dataclass(frozen=True)
class Commit:
    order_id: str


StockCommand = SetStock | Reserve | Release | Commit


def decide(state: Stock, command: StockCommand) -> list[OrderEvent]:
    match command:
        case SetStock(available=available):
            if not 0 <= available <= MAX_STOCK:
                raise InvalidOrder(f"available must be between 0 and {MAX_STOCK}")
            return [StockSet(sku=state.sku, available=available)]
        case Reserve(order_id=order_id, quantity=quantity):
            if order_id in state.reservations:
                return []  # already reserved for this order: a retry, not a second reservation
            if quantity <= 0:
                raise InvalidOrder("quantity must be positive")
            if quantity > state.available:
                raise InsufficientStock(
                    f"sku {state.sku}: {quantity} requested, {state.available} available"
                )
            return [StockReserved(sku=state.sku, order_id=order_id, quantity=quantity)]
        case Release(order_id=order_id):
            held = state.reservations.get(order_id)
            if held is None:
                return []
            return [StockReleased(sku=state.sku, order_id=order_id, quantity=held)]
        case Commit(order_id=order_id):
            held = state.reservations.get(order_id)
            if held is None:
                return []
            return [StockCommitted(sku=state.sku, order_id=order_id, quantity=held)]
    raise TypeError(f"unknown command {command!r}")  # pragma: no cover


def evolve(state: Stock, event: OrderEvent) -> Stock:
    version = state.version + 1
    match event:
        case StockSet(available=available):
            return replace(state, available=available, version=version)
        case StockReserved(order_id=order_id, quantity=quantity):
            return replace(
                state,
                available=state.available - quantity,
                reservations={**state.reservations, order_id: quantity},
                version=version,
            )
        case StockReleased(order_id=order_id, quantity=quantity):
            rest = {k: v for k, v in state.reservations.items() if k != order_id}
            return replace(
                state, available=state.available + quantity, reservations=rest, version=version
            )
        case StockCommitted(order_id=order_id):
            rest = {k: v for k, v in state.reservations.items() if k != order_id}
            return replace(state, reservations=rest, version=version)
    raise TypeError(f"not an inventory event: {event!r}")  # pragma: no cover
