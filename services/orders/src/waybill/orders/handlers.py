"""Application layer: load the stream -> decide -> append (+ projections, outbox) atomically.

Stock keeping (locks, stock streams, reservations) is ``stock.StockKeeping``. Orders use
optimistic concurrency with a short bounded retry (retry_on_conflict); a command on an existing
order locks its projection row, which is also its snapshot. Placing an order and applying a
payment outcome are the saga's hot paths: their statements go to the driver
(``waybill.common.db.driver``).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.orders import LineItem, OrderEvent
from waybill.common.db import driver
from waybill.common.eventstore import (
    Caller,
    EventStore,
    RecordedEvent,
    append_decided,
    retry_on_conflict,
)
from waybill.common.keyset import Position, newest_first_page
from waybill.orders import tables as t
from waybill.orders.domain import inventory as inv
from waybill.orders.domain import order as o
from waybill.orders.domain.errors import IdempotencyKeyReused, OrderNotFound, SkuNotFound
from waybill.orders.stock import StockKeeping
from waybill.orders.views import OrderView, StockView

log = structlog.get_logger(__name__)

_ORDER_COLUMNS = (
    "order_id, tenant_id, status, version, customer, items, currency, total_cents,"
    " shipping_address, payment_method, expires_at, created_at, updated_at"
)
_INSERT_ORDER = f"""
INSERT INTO orders ({_ORDER_COLUMNS})
VALUES ($1, $2, $3, 1, $4::jsonb, $5::jsonb, $6, $7, $8::jsonb, $9, $10, $11, $11)
RETURNING {_ORDER_COLUMNS}
"""
_LOCK_ORDER = """
SELECT status, version, items, total_cents, expires_at FROM orders
WHERE order_id = $1 AND tenant_id = $2 FOR UPDATE
"""
_PURGE_IDEMPOTENCY_KEYS = text(
    "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM idempotency_keys WHERE created_at < :cutoff LIMIT 1000))"
)
_UPDATE_ORDER = "UPDATE orders SET status = $2, version = $3, updated_at = $4 WHERE order_id = $1"


def request_fingerprint(body: Any) -> str:
    """Stable hash of a request body (key order does not matter) for Idempotency-Key checks."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class OrderHandlers:
    engine: AsyncEngine
    store: EventStore
    reservation_ttl: timedelta = timedelta(minutes=15)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # An Idempotency-Key is remembered this long; after it the same key is a new request.
    idempotency_ttl: timedelta = timedelta(days=1)
    _next_idempotency_purge: float = field(default=0.0, init=False, repr=False)

    @property
    def stock(self) -> StockKeeping:
        return StockKeeping(self.store, self.clock)

    # --- inventory --------------------------------------------------------------------

    async def set_stock(self, caller: Caller, sku: str, available: int) -> StockView:
        async with self.engine.begin() as conn:
            await self.stock.set_stock(conn, caller, sku, available)
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
            await self.stock.reserve(conn, caller, command.order_id, command.items)
            events = o.decide(o.Order(order_id=command.order_id), command)
            await self._append_order(conn, caller, command.order_id, 0, events)
            now = self.clock()
            placed = events[0]
            row = await (await driver(conn)).fetchrow(
                _INSERT_ORDER,
                command.order_id,
                caller.tenant_id,
                o.OrderStatus.pending_payment.value,
                json.dumps(command.customer.model_dump(mode="json")),
                json.dumps([i.model_dump(mode="json") for i in command.items]),
                command.currency,
                placed.total_cents,  # type: ignore[attr-defined]
                json.dumps(command.shipping_address.model_dump(mode="json")),
                command.payment_method,
                command.expires_at,
                now,
            )
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
        db = await driver(conn)
        row = await db.fetchrow(_LOCK_ORDER, order_id, caller.tenant_id)
        if row is None:
            raise OrderNotFound(f"order {order_id} not found")
        # The locked projection row is the snapshot: it moves with the stream in the same
        # transactions, under this lock, so it is the state a full replay would give.
        state = o.Order(
            order_id=order_id,
            status=o.OrderStatus(row["status"]),
            version=row["version"],
            items=tuple(LineItem.model_validate(item) for item in row["items"]),
            total_cents=row["total_cents"],
            expires_at=row["expires_at"],
        )
        events = o.decide(state, command)
        if not events:
            return
        after = state
        for event in events:
            after = o.evolve(after, event)
        await self._append_order(conn, caller, order_id, state.version, events)
        await db.execute(_UPDATE_ORDER, order_id, after.status.value, after.version, self.clock())
        if o.releases_reservation(state.status, after.status):
            await self.stock.settle(conn, caller, order_id, state.items, inv.Release)
        elif state.status is o.OrderStatus.pending_payment and after.status is o.OrderStatus.paid:
            await self.stock.settle(conn, caller, order_id, state.items, inv.Commit)

    async def _append_order(
        self,
        conn: AsyncConnection,
        caller: Caller,
        order_id: str,
        expected_version: int,
        events: Sequence[OrderEvent],
    ) -> None:
        await append_decided(
            self.store,
            conn,
            caller,
            stream_id=order_id,
            stream_type="order",
            expected_version=expected_version,
            events=events,
        )

    async def _claim_idempotency_key(
        self, conn: AsyncConnection, caller: Caller, command: o.PlaceOrder, key: str, body_hash: str
    ) -> OrderView | None:
        # A concurrent request with the same key blocks on this insert until the first one
        # commits (then we return its order) or rolls back (then we go ahead ourselves). A key
        # older than the TTL is taken over: the same key is then a new request.
        now = self.clock()
        cutoff = now - self.idempotency_ttl
        await self._purge_expired_idempotency_keys(conn, cutoff)
        claim = pg_insert(t.idempotency_keys).values(
            tenant_id=caller.tenant_id,
            key=key,
            request_hash=body_hash,
            order_id=command.order_id,
            created_at=now,
        )
        claimed = await conn.execute(
            claim.on_conflict_do_update(
                constraint="pk_idempotency_keys",
                set_={
                    "request_hash": claim.excluded.request_hash,
                    "order_id": claim.excluded.order_id,
                    "created_at": claim.excluded.created_at,
                },
                where=t.idempotency_keys.c.created_at < cutoff,
            ).returning(t.idempotency_keys.c.key)
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

    async def _purge_expired_idempotency_keys(
        self, conn: AsyncConnection, cutoff: datetime
    ) -> None:
        """Delete a bounded batch of expired keys, at most once a minute (or once a TTL, if
        shorter) per process: on the claim path, because a key nobody reuses is otherwise
        never overwritten (ix_idempotency_keys_created_at finds them)."""
        now = time.monotonic()
        if now < self._next_idempotency_purge:
            return
        self._next_idempotency_purge = now + min(60.0, self.idempotency_ttl.total_seconds())
        purged = await conn.execute(_PURGE_IDEMPOTENCY_KEYS, {"cutoff": cutoff})
        if purged.rowcount:
            log.info("orders_idempotency_keys_purged", count=purged.rowcount)

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
