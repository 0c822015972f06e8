"""Stock keeping inside an order command's transaction: lock, decide, append, project.

Stock is serialised per sku by locking its ``inventory`` row (``FOR UPDATE``, in sku order so
two orders never deadlock); the sku's stream is then appended at the version we hold the lock
for, so concurrent orders for the last units queue up instead of failing on a version conflict.
The locked row is the snapshot: it moves with the stream in the same transactions, under that
lock, so it is the state a full replay would give.

Placing an order and settling its payment are the saga's hot paths, so their statements
(``repository``) go to the driver and each sku's projection (its ``inventory`` row and its
``reservations``) moves in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.orders import LineItem, OrderEvent
from waybill.common.eventstore import Caller, EventStore, append_decided
from waybill.orders import repository as db
from waybill.orders.domain import inventory as inv
from waybill.orders.domain.errors import InsufficientStock


def inventory_stream(tenant_id: str, sku: str) -> str:
    return f"inventory:{tenant_id}:{sku}"


@dataclass(frozen=True)
class StockKeeping:
    store: EventStore
    clock: Callable[[], datetime]

    async def set_stock(
        self, conn: AsyncConnection, caller: Caller, sku: str, available: int
    ) -> None:
        rows = await db.lock_skus(conn, caller.tenant_id, [sku])
        row = rows[0] if rows else None
        state = inv.Stock(sku=sku) if row is None else _state(row, {})
        events = inv.decide(state, inv.SetStock(available))
        if row is None:
            await self._append(conn, caller, sku, state, events)
            after = _evolve(state, events)
            await db.insert_stock(
                conn,
                caller.tenant_id,
                sku,
                stream_id=inventory_stream(caller.tenant_id, sku),
                available=after.available,
                version=after.version,
                now=self.clock(),
            )
            return
        await self._apply(conn, caller, sku, state, events, reserved=row["reserved"])

    async def reserve(
        self, conn: AsyncConnection, caller: Caller, order_id: str, items: Sequence[LineItem]
    ) -> None:
        """Reserve every line's units for ``order_id`` (InsufficientStock if one cannot be)."""
        skus = sorted({item.sku for item in items})
        rows = {r["sku"]: r for r in await db.lock_skus(conn, caller.tenant_id, skus)}
        for item in sorted(items, key=lambda i: i.sku):
            row = rows.get(item.sku)
            if row is None:
                raise InsufficientStock(f"sku {item.sku} is not stocked")
            state = _state(row, {})
            events = inv.decide(state, inv.Reserve(order_id, item.quantity))
            await self._apply(conn, caller, item.sku, state, events, reserved=row["reserved"])

    async def settle(
        self,
        conn: AsyncConnection,
        caller: Caller,
        order_id: str,
        items: Sequence[LineItem],
        settle: type[inv.Release] | type[inv.Commit],
    ) -> None:
        """Release or commit what ``order_id`` holds of each of its skus."""
        skus = sorted({item.sku for item in items})
        for row in await db.lock_skus_with_holding(conn, caller.tenant_id, skus, order_id):
            held = row["held"]
            state = _state(row, {order_id: held} if held is not None else {})
            events = inv.decide(state, settle(order_id))
            await self._apply(conn, caller, row["sku"], state, events, reserved=row["reserved"])

    async def _apply(
        self,
        conn: AsyncConnection,
        caller: Caller,
        sku: str,
        state: inv.Stock,
        events: Sequence[OrderEvent],
        *,
        reserved: int,
    ) -> None:
        """Append ``events`` at the locked version and move the sku's projection along.

        ``reserved`` is the sku's total reserved units in the projection; the state only
        carries the reservation of the order at hand, so the total moves by its change.
        """
        if not events:
            return
        await self._append(conn, caller, sku, state, events)
        after = _evolve(state, events)
        added = {o: q for o, q in after.reservations.items() if o not in state.reservations}
        removed = [o for o in state.reservations if o not in after.reservations]
        await db.project_stock(
            conn,
            caller.tenant_id,
            sku,
            available=after.available,
            reserved=reserved + after.reserved - state.reserved,
            version=after.version,
            now=self.clock(),
            added=added,
            removed=removed,
        )

    async def _append(
        self,
        conn: AsyncConnection,
        caller: Caller,
        sku: str,
        state: inv.Stock,
        events: Sequence[OrderEvent],
    ) -> None:
        await append_decided(
            self.store,
            conn,
            caller,
            stream_id=inventory_stream(caller.tenant_id, sku),
            stream_type="inventory",
            expected_version=state.version,
            # Stock events are private (``InventoryEvent.public``): they stay in this
            # service's event store and never reach Kafka (ADR 0001).
            events=events,
        )


def _state(row: asyncpg.Record, reservations: dict[str, int]) -> inv.Stock:
    # The reservation of the one order this command concerns is all the decider needs to see.
    return inv.Stock(
        sku=row["sku"],
        available=row["available"],
        version=row["version"],
        reservations=reservations,
    )


def _evolve(state: inv.Stock, events: Sequence[OrderEvent]) -> inv.Stock:
    for event in events:
        state = inv.evolve(state, event)
    return state
