"""Stock keeping inside an order command's transaction: lock, decide, append, project.

Stock is serialised per sku by locking its ``inventory`` row (``FOR UPDATE``, in sku order so
two orders never deadlock); the sku's stream is then appended at the version we hold the lock
for, so concurrent orders for the last units queue up instead of failing on a version conflict.
The locked row is the snapshot: it moves with the stream in the same transactions, under that
lock, so it is the state a full replay would give.

Placing an order and settling its payment are the saga's hot paths, so their statements go to
the driver (``waybill.common.db.driver``, see its docstring for the measurement) and each
sku's projection (its ``inventory`` row and its ``reservations``) moves in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.orders import LineItem, OrderEvent
from waybill.common.db import driver
from waybill.common.eventstore import Caller, EventStore, append_decided
from waybill.orders import tables as t
from waybill.orders.domain import inventory as inv
from waybill.orders.domain.errors import InsufficientStock

# The skus' rows, locked in sku order (the deadlock-free order every writer uses).
_LOCK_SKUS = """
SELECT sku, available, reserved, version FROM inventory
WHERE tenant_id = $1 AND sku = ANY($2::text[])
ORDER BY sku FOR UPDATE
"""

# As _LOCK_SKUS, with what one order holds of each (NULL: nothing).
_LOCK_SKUS_WITH_HOLDING = """
SELECT i.sku, i.available, i.reserved, i.version, r.quantity AS held
FROM inventory i
LEFT JOIN reservations r ON r.tenant_id = i.tenant_id AND r.sku = i.sku AND r.order_id = $3
WHERE i.tenant_id = $1 AND i.sku = ANY($2::text[])
ORDER BY i.sku FOR UPDATE OF i
"""

# One sku's projection after its events: the row, reservations added ($7/$8), removed ($9).
_PROJECT = """
WITH stock AS (
    UPDATE inventory SET available = $3, reserved = $4, version = $5, updated_at = $6
    WHERE tenant_id = $1 AND sku = $2
), added AS (
    INSERT INTO reservations (tenant_id, sku, order_id, quantity)
    SELECT $1, $2, r.order_id, r.quantity
    FROM unnest($7::text[], $8::bigint[]) AS r(order_id, quantity)
)
DELETE FROM reservations WHERE tenant_id = $1 AND sku = $2 AND order_id = ANY($9::text[])
"""


def inventory_stream(tenant_id: str, sku: str) -> str:
    return f"inventory:{tenant_id}:{sku}"


@dataclass(frozen=True)
class StockKeeping:
    store: EventStore
    clock: Callable[[], datetime]

    async def set_stock(
        self, conn: AsyncConnection, caller: Caller, sku: str, available: int
    ) -> None:
        db = await driver(conn)
        row = await db.fetchrow(_LOCK_SKUS, caller.tenant_id, [sku])
        state = inv.Stock(sku=sku) if row is None else _state(row, {})
        events = inv.decide(state, inv.SetStock(available))
        if row is None:
            await self._append(conn, caller, sku, state, events)
            after = _evolve(state, events)
            await conn.execute(
                insert(t.inventory).values(
                    tenant_id=caller.tenant_id,
                    sku=sku,
                    stream_id=inventory_stream(caller.tenant_id, sku),
                    available=after.available,
                    reserved=0,
                    version=after.version,
                    updated_at=self.clock(),
                )
            )
            return
        await self._apply(conn, db, caller, sku, state, events, reserved=row["reserved"])

    async def reserve(
        self, conn: AsyncConnection, caller: Caller, order_id: str, items: Sequence[LineItem]
    ) -> None:
        """Reserve every line's units for ``order_id`` (InsufficientStock if one cannot be)."""
        db = await driver(conn)
        skus = sorted({item.sku for item in items})
        rows = {r["sku"]: r for r in await db.fetch(_LOCK_SKUS, caller.tenant_id, skus)}
        for item in sorted(items, key=lambda i: i.sku):
            row = rows.get(item.sku)
            if row is None:
                raise InsufficientStock(f"sku {item.sku} is not stocked")
            state = _state(row, {})
            events = inv.decide(state, inv.Reserve(order_id, item.quantity))
            await self._apply(conn, db, caller, item.sku, state, events, reserved=row["reserved"])

    async def settle(
        self,
        conn: AsyncConnection,
        caller: Caller,
        order_id: str,
        items: Sequence[LineItem],
        settle: type[inv.Release] | type[inv.Commit],
    ) -> None:
        """Release or commit what ``order_id`` holds of each of its skus."""
        db = await driver(conn)
        skus = sorted({item.sku for item in items})
        for row in await db.fetch(_LOCK_SKUS_WITH_HOLDING, caller.tenant_id, skus, order_id):
            held = row["held"]
            state = _state(row, {order_id: held} if held is not None else {})
            events = inv.decide(state, settle(order_id))
            await self._apply(conn, db, caller, row["sku"], state, events, reserved=row["reserved"])

    async def _apply(
        self,
        conn: AsyncConnection,
        db: asyncpg.Connection,
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
        await db.execute(
            _PROJECT,
            caller.tenant_id,
            sku,
            after.available,
            reserved + after.reserved - state.reserved,
            after.version,
            self.clock(),
            list(added),
            list(added.values()),
            removed,
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
