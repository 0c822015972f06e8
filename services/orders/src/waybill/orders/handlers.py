"""Application layer: load the stream -> decide -> append (+ projections, outbox) atomically.

Stock is serialised per sku by locking its inventory row (``FOR UPDATE``, in sku order so two
orders never deadlock); the inventory stream is then appended at the version we hold the lock
for, so concurrent orders for the last units queue up instead of failing on a version conflict.
Orders themselves use optimistic concurrency with a short bounded retry (retry_on_conflict).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.orders import LineItem, OrderEvent
from waybill.common.eventstore import EventStore, NewEvent, RecordedEvent, retry_on_conflict
from waybill.common.keyset import Position, newest_first_page
from waybill.orders import projections as t
from waybill.orders.domain import inventory as inv
from waybill.orders.domain import order as o
from waybill.orders.domain.errors import InsufficientStock, OrderNotFound, OrdersError
from waybill.orders.views import OrderView, StockView

log = structlog.get_logger(__name__)


class IdempotencyKeyReused(OrdersError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422


class SkuNotFound(OrdersError):
    code = "SKU_NOT_FOUND"
    status = 404


@dataclass(frozen=True)
class Caller:
    """Who asks, and the ids that follow the request into the events it causes."""

    tenant_id: str
    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None


def request_fingerprint(body: Any) -> str:
    """Stable hash of a request body (key order does not matter) for Idempotency-Key checks."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def inventory_stream(tenant_id: str, sku: str) -> str:
    return f"inventory:{tenant_id}:{sku}"


def _new_events(events: Sequence[OrderEvent]) -> list[NewEvent]:
    return [
        NewEvent(type=e.event_type, data=e.model_dump(mode="json"), schema_version=e.schema_version)
        for e in events
    ]


@dataclass
class OrderHandlers:
    engine: AsyncEngine
    store: EventStore
    reservation_ttl: timedelta = timedelta(minutes=15)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- inventory --------------------------------------------------------------------

    async def set_stock(self, caller: Caller, sku: str, available: int) -> StockView:
        async with self.engine.begin() as conn:
            row = await self._lock_stock_row(conn, caller.tenant_id, sku)
            state = inv.Stock(sku=sku) if row is None else self._stock_state(row, {})
            events = inv.decide(state, inv.SetStock(available))
            await self._append_stock(
                conn,
                caller,
                sku,
                state,
                events,
                reserved=row.reserved if row else 0,
                new=row is None,
            )
            return await self._stock_view(conn, caller.tenant_id, sku)

    async def get_stock(self, tenant_id: str, sku: str) -> StockView:
        async with self.engine.connect() as conn:
            return await self._stock_view(conn, tenant_id, sku)

    # --- orders -----------------------------------------------------------------------

    async def place_order(
        self, caller: Caller, command: o.PlaceOrder, idempotency: tuple[str, str] | None = None
    ) -> tuple[OrderView, bool]:
        """Place the order; returns (order, created). ``idempotency`` = (key, body hash)."""
        async with self.engine.begin() as conn:
            if idempotency is not None:
                earlier = await self._claim_idempotency_key(conn, caller, command, *idempotency)
                if earlier is not None:
                    return earlier, False
            await self._reserve_stock(conn, caller, command)
            events = o.decide(o.Order(order_id=command.order_id), command)
            await self._append_order(conn, caller, command.order_id, 0, events)
            now = self.clock()
            placed = events[0]
            row = (
                await conn.execute(
                    insert(t.orders)
                    .values(
                        order_id=command.order_id,
                        tenant_id=caller.tenant_id,
                        status=o.OrderStatus.pending_payment.value,
                        version=1,
                        customer=command.customer.model_dump(mode="json"),
                        items=[i.model_dump(mode="json") for i in command.items],
                        currency=command.currency,
                        total_cents=placed.total_cents,  # type: ignore[attr-defined]
                        shipping_address=command.shipping_address.model_dump(mode="json"),
                        payment_method=command.payment_method,
                        expires_at=command.expires_at,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*t.orders.c)
                )
            ).one()
            log.info("order_place_succeeded", order_id=command.order_id, tenant_id=caller.tenant_id)
            return OrderView.from_row(row), True

    async def cancel_order(self, caller: Caller, order_id: str) -> OrderView:
        return await self.apply(caller, order_id, o.CancelOrder(reason="requested"))

    async def apply(self, caller: Caller, order_id: str, command: o.Command) -> OrderView:
        """Run ``command`` on an existing order (bounded retry on a version conflict)."""

        async def attempt() -> OrderView:
            async with self.engine.begin() as conn:
                await self.apply_in(conn, caller, order_id, command)
                return await self._order_view(conn, caller.tenant_id, order_id)

        return await retry_on_conflict(attempt)

    async def expire_due_orders(self, *, limit: int = 200) -> int:
        """Expire unpaid orders past their reservation deadline; returns how many expired."""
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.orders.c.order_id, t.orders.c.tenant_id)
                    .where(t.orders.c.status == "pending_payment", t.orders.c.expires_at <= now)
                    .order_by(t.orders.c.expires_at)
                    .limit(limit)
                )
            ).all()
        expired = 0
        for row in rows:
            caller = Caller(tenant_id=row.tenant_id, correlation_id=f"expiry-{uuid.uuid4()}")
            view = await self.apply(caller, row.order_id, o.ExpireOrder(now=now))
            expired += view.status == o.OrderStatus.expired.value
        return expired

    async def get_order(self, tenant_id: str, order_id: str) -> OrderView:
        async with self.engine.connect() as conn:
            return await self._order_view(conn, tenant_id, order_id)

    async def list_orders(
        self, tenant_id: str, *, status: str | None, limit: int, after: Position | None
    ) -> tuple[list[OrderView], Position | None]:
        """Newest first, one keyset page at a time."""
        query = select(t.orders).where(t.orders.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(t.orders.c.status == status)
        rows, last = await newest_first_page(
            self.engine,
            query,
            created=t.orders.c.created_at,
            key=t.orders.c.order_id,
            limit=limit,
            after=after,
        )
        return [OrderView.from_row(r) for r in rows], last

    async def order_events(
        self, tenant_id: str, order_id: str, *, after_version: int, limit: int
    ) -> tuple[list[RecordedEvent], int | None]:
        """One page of the order's stream in version order, and the version to continue after."""
        async with self.engine.connect() as conn:
            await self._order_view(conn, tenant_id, order_id)  # 404 across tenants
            events = await self.store.load(
                conn, order_id, after_version=after_version, limit=limit + 1
            )
        if len(events) <= limit:
            return events, None
        return events[:limit], events[limit - 1].version

    # --- internals ----------------------------------------------------------------------

    async def apply_in(
        self, conn: AsyncConnection, caller: Caller, order_id: str, command: o.Command
    ) -> None:
        """Run ``command`` inside the caller's transaction (e.g. a consumer's, with its inbox)."""
        row = (
            await conn.execute(
                select(
                    t.orders.c.status,
                    t.orders.c.version,
                    t.orders.c["items"],
                    t.orders.c.total_cents,
                    t.orders.c.expires_at,
                )
                .where(t.orders.c.order_id == order_id, t.orders.c.tenant_id == caller.tenant_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise OrderNotFound(f"order {order_id} not found")
        # The locked projection row is the snapshot: it moves with the stream in the same
        # transactions, under this lock, so it is the state a full replay would give.
        state = o.Order(
            order_id=order_id,
            status=o.OrderStatus(row.status),
            version=row.version,
            items=tuple(LineItem.model_validate(item) for item in row.items),
            total_cents=row.total_cents,
            expires_at=row.expires_at,
        )
        events = o.decide(state, command)
        if not events:
            return
        after = state
        for event in events:
            after = o.evolve(after, event)
        await self._append_order(conn, caller, order_id, state.version, events)
        await conn.execute(
            update(t.orders)
            .where(t.orders.c.order_id == order_id)
            .values(status=after.status.value, version=after.version, updated_at=self.clock())
        )
        if o.releases_reservation(state.status, after.status):
            await self._settle_reservation(conn, caller, order_id, state.items, inv.Release)
        elif state.status is o.OrderStatus.pending_payment and after.status is o.OrderStatus.paid:
            await self._settle_reservation(conn, caller, order_id, state.items, inv.Commit)

    async def _append_order(
        self,
        conn: AsyncConnection,
        caller: Caller,
        order_id: str,
        expected_version: int,
        events: Sequence[OrderEvent],
    ) -> None:
        await self.store.append(
            conn,
            stream_id=order_id,
            stream_type="order",
            tenant_id=caller.tenant_id,
            events=_new_events(events),
            expected_version=expected_version,
            correlation_id=caller.correlation_id,
            causation_id=caller.causation_id,
            traceparent=caller.traceparent,
        )

    async def _claim_idempotency_key(
        self, conn: AsyncConnection, caller: Caller, command: o.PlaceOrder, key: str, body_hash: str
    ) -> OrderView | None:
        # A concurrent request with the same key blocks on this insert until the first one
        # commits (then we return its order) or rolls back (then we go ahead ourselves).
        claimed = await conn.execute(
            pg_insert(t.idempotency_keys)
            .values(
                tenant_id=caller.tenant_id,
                key=key,
                request_hash=body_hash,
                order_id=command.order_id,
            )
            .on_conflict_do_nothing()
            .returning(t.idempotency_keys.c.key)
        )
        if claimed.first() is not None:
            return None
        earlier = (
            await conn.execute(
                select(t.idempotency_keys).where(
                    t.idempotency_keys.c.tenant_id == caller.tenant_id,
                    t.idempotency_keys.c.key == key,
                )
            )
        ).one()
        if earlier.request_hash != body_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body"
            )
        return await self._order_view(conn, caller.tenant_id, earlier.order_id)

    async def _reserve_stock(
        self, conn: AsyncConnection, caller: Caller, command: o.PlaceOrder
    ) -> None:
        skus = sorted({item.sku for item in command.items})
        rows = {
            r.sku: r
            for r in (
                await conn.execute(
                    select(t.inventory)
                    .where(t.inventory.c.tenant_id == caller.tenant_id, t.inventory.c.sku.in_(skus))
                    .order_by(t.inventory.c.sku)
                    .with_for_update()
                )
            ).all()
        }
        for item in sorted(command.items, key=lambda i: i.sku):
            row = rows.get(item.sku)
            if row is None:
                raise InsufficientStock(f"sku {item.sku} is not stocked")
            state = self._stock_state(row, {})
            events = inv.decide(state, inv.Reserve(command.order_id, item.quantity))
            await self._append_stock(
                conn, caller, item.sku, state, events, reserved=row.reserved, new=False
            )

    async def _settle_reservation(
        self,
        conn: AsyncConnection,
        caller: Caller,
        order_id: str,
        items: Sequence[Any],
        settle: type[inv.Release] | type[inv.Commit],
    ) -> None:
        for sku in sorted({item.sku for item in items}):
            row = await self._lock_stock_row(conn, caller.tenant_id, sku)
            if row is None:
                continue
            held = (
                await conn.execute(
                    select(t.reservations.c.quantity).where(
                        t.reservations.c.tenant_id == caller.tenant_id,
                        t.reservations.c.sku == sku,
                        t.reservations.c.order_id == order_id,
                    )
                )
            ).scalar_one_or_none()
            state = self._stock_state(row, {order_id: held} if held else {})
            events = inv.decide(state, settle(order_id))
            await self._append_stock(
                conn, caller, sku, state, events, reserved=row.reserved, new=False
            )

    async def _lock_stock_row(self, conn: AsyncConnection, tenant_id: str, sku: str) -> Any:
        return (
            await conn.execute(
                select(t.inventory)
                .where(t.inventory.c.tenant_id == tenant_id, t.inventory.c.sku == sku)
                .with_for_update()
            )
        ).one_or_none()

    @staticmethod
    def _stock_state(row: Any, reservations: dict[str, int]) -> inv.Stock:
        # The locked projection row is the snapshot; the reservation of the one order this
        # command concerns is all the decider needs to see.
        return inv.Stock(
            sku=row.sku, available=row.available, version=row.version, reservations=reservations
        )

    async def _append_stock(
        self,
        conn: AsyncConnection,
        caller: Caller,
        sku: str,
        state: inv.Stock,
        events: Sequence[OrderEvent],
        *,
        reserved: int,
        new: bool,
    ) -> None:
        """Append stock events at the locked version and move the projection row along.

        ``reserved`` is the sku's total reserved units in the projection; the state only
        carries the reservation of the order at hand, so the total moves by its change.
        """
        if not events:
            return
        stream_id = inventory_stream(caller.tenant_id, sku)
        await self.store.append(
            conn,
            stream_id=stream_id,
            stream_type="inventory",
            tenant_id=caller.tenant_id,
            events=_new_events(events),
            expected_version=state.version,
            correlation_id=caller.correlation_id,
            causation_id=caller.causation_id,
            traceparent=caller.traceparent,
            # Stock streams are how orders reserves units, not part of the event contract:
            # they stay in this service's event store and never reach Kafka (ADR 0001).
            publish=False,
        )
        after = state
        for event in events:
            after = inv.evolve(after, event)
        values = {
            "available": after.available,
            "reserved": reserved + after.reserved - state.reserved,
            "version": after.version,
            "updated_at": self.clock(),
        }
        if new:
            await conn.execute(
                insert(t.inventory).values(
                    tenant_id=caller.tenant_id, sku=sku, stream_id=stream_id, **values
                )
            )
        else:
            await conn.execute(
                update(t.inventory)
                .where(t.inventory.c.tenant_id == caller.tenant_id, t.inventory.c.sku == sku)
                .values(**values)
            )
        await self._project_reservations(conn, caller.tenant_id, sku, state, after)

    async def _project_reservations(
        self, conn: AsyncConnection, tenant_id: str, sku: str, before: inv.Stock, after: inv.Stock
    ) -> None:
        for order_id, quantity in after.reservations.items():
            if order_id not in before.reservations:
                await conn.execute(
                    insert(t.reservations).values(
                        tenant_id=tenant_id, sku=sku, order_id=order_id, quantity=quantity
                    )
                )
        for order_id in before.reservations.keys() - after.reservations.keys():
            await conn.execute(
                t.reservations.delete().where(
                    t.reservations.c.tenant_id == tenant_id,
                    t.reservations.c.sku == sku,
                    t.reservations.c.order_id == order_id,
                )
            )

    async def _stock_view(self, conn: AsyncConnection, tenant_id: str, sku: str) -> StockView:
        row = (
            await conn.execute(
                select(t.inventory).where(
                    t.inventory.c.tenant_id == tenant_id, t.inventory.c.sku == sku
                )
            )
        ).one_or_none()
        if row is None:
            raise SkuNotFound(f"sku {sku} not found")
        return StockView(
            sku=sku, available=row.available, reserved=row.reserved, version=row.version
        )

    async def _order_view(self, conn: AsyncConnection, tenant_id: str, order_id: str) -> OrderView:
        row = (
            await conn.execute(
                select(t.orders).where(
                    t.orders.c.order_id == order_id, t.orders.c.tenant_id == tenant_id
                )
            )
        ).one_or_none()
        if row is None:
            raise OrderNotFound(f"order {order_id} not found")
        return OrderView.from_row(row)
