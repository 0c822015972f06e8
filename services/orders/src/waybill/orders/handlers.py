"""Application layer: load the stream -> decide -> append (+ projections, outbox) atomically.

Stock keeping (locks, stock streams, reservations) is ``stock.StockKeeping``. Orders use
optimistic concurrency with a short bounded retry (retry_on_conflict); a command on an existing
order locks its projection row, which is also its snapshot. Every statement is in
``repository`` (the hot paths' as driver statements).
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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.orders import OrderEvent
from waybill.common.eventstore import (
    Caller,
    EventStore,
    RecordedEvent,
    append_decided,
    retry_on_conflict,
)
from waybill.common.keyset import Position
from waybill.orders import repository as db
from waybill.orders import saga_metrics
from waybill.orders.domain import inventory as inv
from waybill.orders.domain import order as o
from waybill.orders.domain.errors import IdempotencyKeyReused, OrderNotFound, SkuNotFound
from waybill.orders.stock import StockKeeping
from waybill.orders.views import OrderView, StockView

log = structlog.get_logger(__name__)


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

    def __post_init__(self) -> None:
        saga_metrics.watch_commits(self.engine)

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
            placed = events[0]
            total_cents = placed.total_cents  # type: ignore[attr-defined]
            row = await db.insert_order(conn, caller.tenant_id, command, total_cents, self.clock())
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
            rows = await db.due_for_expiry(conn, now, limit)
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
        rows, last = await db.orders_page(
            self.engine, tenant_id, status=status, limit=limit, after=after
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
    ) -> o.Order:
        """Run ``command`` inside the caller's transaction (e.g. a consumer's, with its inbox);
        returns the state it decided on."""
        state = await db.lock_order(conn, caller.tenant_id, order_id)
        if state is None:
            raise OrderNotFound(f"order {order_id} not found")
        events = o.decide(state, command)
        if not events:
            return state
        after = state
        for event in events:
            after = o.evolve(after, event)
        await self._append_order(conn, caller, order_id, state.version, events)
        now = self.clock()
        placed_at = await db.update_order(conn, after, now)
        step = saga_metrics.step_of(state.status, after.status)
        if step is not None:
            saga_metrics.observe_at_commit(conn, step, (now - placed_at).total_seconds())
        if o.releases_reservation(state.status, after.status):
            await self.stock.settle(conn, caller, order_id, state.items, inv.Release)
        elif state.status is o.OrderStatus.pending_payment and after.status is o.OrderStatus.paid:
            await self.stock.settle(conn, caller, order_id, state.items, inv.Commit)
        return state

    async def follow_shipment(
        self, conn: AsyncConnection, caller: Caller, order_id: str, command: o.ShipmentCommand
    ) -> None:
        """Move the order after its shipment, inside the consumer's transaction.

        News the decider ignores because the order was cancelled first is acknowledged with a
        warning, not dead-lettered (``waybill.orders.domain.order``): the order is right as it
        is, and an operator decides what happens to the parcel.
        """
        before = await self.apply_in(conn, caller, order_id, command)
        if o.ignores_shipment(before):
            log.warning(
                "order_shipment_ignored",
                order_id=order_id,
                shipment_id=command.shipment_id,
                order_status=before.status.value,
                shipment_status=command.shipment_status,
            )

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
        if await db.claim_idempotency_key(
            conn, caller.tenant_id, key, body_hash, command.order_id, now, cutoff
        ):
            return None
        earlier = await db.idempotency_key(conn, caller.tenant_id, key)
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
        purged = await db.purge_idempotency_keys(conn, cutoff)
        if purged:
            log.info("orders_idempotency_keys_purged", count=purged)

    async def _stock_view(self, conn: AsyncConnection, tenant_id: str, sku: str) -> StockView:
        row = await db.stock_row(conn, tenant_id, sku)
        if row is None:
            raise SkuNotFound(f"sku {sku} not found")
        return StockView(
            sku=sku, available=row.available, reserved=row.reserved, version=row.version
        )

    async def _order_view(self, conn: AsyncConnection, tenant_id: str, order_id: str) -> OrderView:
        row = await db.order_row(conn, tenant_id, order_id)
        if row is None:
            raise OrderNotFound(f"order {order_id} not found")
        return OrderView.from_row(row)
