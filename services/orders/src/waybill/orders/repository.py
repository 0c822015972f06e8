"""Every SQL statement of the orders service (STYLE.md: the shape of a service).

Handlers and stock keeping decide *when* to read or write; this module says *how*. The
statements of the saga's hot paths (placing an order, locking it for a payment outcome, moving
a sku's stock) are plain ``$n`` driver statements (``waybill.common.db.driver``): SQLAlchemy's
per-statement CPU is about as large as the driver's (ADR 0007), so each stays one driver call,
one round trip. Cold paths (the API's reads, idempotency bookkeeping, the expiry scan) use
SQLAlchemy over the table definitions of ``tables``.

Each function takes the connection of the caller's transaction, so a command still writes its
events, projections, outbox and inbox rows together (STYLE.md: one transaction per command);
only the keyset page opens its own (``newest_first_page`` does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.orders import Address, Customer, LineItem
from waybill.common.db import driver
from waybill.common.keyset import Position, newest_first_page
from waybill.orders import tables as t
from waybill.orders.domain import order as o

# --- orders: the hot path ------------------------------------------------------------------

_ORDER_COLUMNS = (
    "order_id, tenant_id, status, version, customer, items, currency, total_cents,"
    " shipping_address, payment_method, expires_at, created_at, updated_at"
)
INSERT_ORDER = f"""
INSERT INTO orders ({_ORDER_COLUMNS})
VALUES ($1, $2, $3, 1, $4::jsonb, $5::jsonb, $6, $7, $8::jsonb, $9, $10, $11, $11)
RETURNING {_ORDER_COLUMNS}
"""

# Serialises the writers of one order (held until commit) and reads its snapshot; no row: not
# this tenant's order.
LOCK_ORDER = """
SELECT status, version, items, total_cents, expires_at, customer, shipping_address FROM orders
WHERE order_id = $1 AND tenant_id = $2 FOR UPDATE
"""

# The projection after new events; returns when the order was placed (saga latency).
UPDATE_ORDER = (
    "UPDATE orders SET status = $2, version = $3, updated_at = $4 WHERE order_id = $1"
    " RETURNING created_at"
)


async def insert_order(
    conn: AsyncConnection, tenant_id: str, command: o.PlaceOrder, total_cents: int, now: datetime
) -> asyncpg.Record:
    """The projection row of a just-placed order (status ``pending_payment``, version 1)."""
    row = await (await driver(conn)).fetchrow(
        INSERT_ORDER,
        command.order_id,
        tenant_id,
        o.OrderStatus.pending_payment.value,
        json.dumps(command.customer.model_dump(mode="json")),
        json.dumps([i.model_dump(mode="json") for i in command.items]),
        command.currency,
        total_cents,
        json.dumps(command.shipping_address.model_dump(mode="json")),
        command.payment_method,
        command.expires_at,
        now,
    )
    assert row is not None  # INSERT ... RETURNING without a conflict clause returns its row
    return row


async def lock_order(conn: AsyncConnection, tenant_id: str, order_id: str) -> o.Order | None:
    """Lock the tenant's order row until commit and return its snapshot."""
    row = await (await driver(conn)).fetchrow(LOCK_ORDER, order_id, tenant_id)
    return None if row is None else snapshot(order_id, row)


def snapshot(order_id: str, row: Mapping[str, Any]) -> o.Order:
    """The order state an ``orders`` row holds (the columns ``LOCK_ORDER`` reads).

    The locked projection row is the snapshot: it moves with the stream in the same
    transactions, under the lock, so it is the state a full replay would give (the property
    test ``test_snapshot_matches_stream`` checks this very function against a fold)."""
    return o.Order(
        order_id=order_id,
        status=o.OrderStatus(row["status"]),
        version=row["version"],
        items=tuple(LineItem.model_validate(item) for item in row["items"]),
        total_cents=row["total_cents"],
        expires_at=row["expires_at"],
        customer=Customer.model_validate(row["customer"]),
        shipping_address=Address.model_validate(row["shipping_address"]),
    )


async def update_order(conn: AsyncConnection, after: o.Order, now: datetime) -> datetime:
    """Move the projection row (locked by ``lock_order``); returns the order's placed time."""
    placed_at: datetime = await (await driver(conn)).fetchval(
        UPDATE_ORDER, after.order_id, after.status.value, after.version, now
    )
    return placed_at


# --- orders: reads and scans ---------------------------------------------------------------


async def order_row(conn: AsyncConnection, tenant_id: str, order_id: str) -> Any | None:
    return (
        await conn.execute(
            select(t.orders).where(
                t.orders.c.order_id == order_id, t.orders.c.tenant_id == tenant_id
            )
        )
    ).one_or_none()


async def orders_page(
    engine: AsyncEngine, tenant_id: str, *, status: str | None, limit: int, after: Position | None
) -> tuple[Sequence[Any], Position | None]:
    """Newest first, one keyset page at a time."""
    query = select(t.orders).where(t.orders.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(t.orders.c.status == status)
    return await newest_first_page(
        engine,
        query,
        created=t.orders.c.created_at,
        key=t.orders.c.order_id,
        limit=limit,
        after=after,
    )


async def due_for_expiry(conn: AsyncConnection, now: datetime, limit: int) -> Sequence[Any]:
    """Unpaid orders past their reservation deadline, oldest deadline first."""
    return (
        await conn.execute(
            select(t.orders.c.order_id, t.orders.c.tenant_id)
            .where(t.orders.c.status == "pending_payment", t.orders.c.expires_at <= now)
            .order_by(t.orders.c.expires_at)
            .limit(limit)
        )
    ).all()


# --- idempotency keys ----------------------------------------------------------------------

_PURGE_IDEMPOTENCY_KEYS = text(
    "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM idempotency_keys WHERE created_at < :cutoff LIMIT 1000))"
)


async def claim_idempotency_key(
    conn: AsyncConnection,
    tenant_id: str,
    key: str,
    body_hash: str,
    order_id: str,
    now: datetime,
    cutoff: datetime,
) -> bool:
    """Claim ``key`` for ``order_id``: True if it was free or older than ``cutoff``.

    A concurrent claim of the same key blocks on this insert until the first transaction
    commits (then it gets False) or rolls back (then it gets True).
    """
    claim = pg_insert(t.idempotency_keys).values(
        tenant_id=tenant_id, key=key, request_hash=body_hash, order_id=order_id, created_at=now
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
    return claimed.first() is not None


async def idempotency_key(conn: AsyncConnection, tenant_id: str, key: str) -> Any:
    """The (existing) key's row: its request hash and order."""
    return (
        await conn.execute(
            select(t.idempotency_keys).where(
                t.idempotency_keys.c.tenant_id == tenant_id, t.idempotency_keys.c.key == key
            )
        )
    ).one()


async def purge_idempotency_keys(conn: AsyncConnection, cutoff: datetime) -> int:
    """Delete a bounded batch of keys created before ``cutoff``; returns how many."""
    purged = await conn.execute(_PURGE_IDEMPOTENCY_KEYS, {"cutoff": cutoff})
    return purged.rowcount


# --- stock: the hot path -------------------------------------------------------------------

# The skus' rows, locked in sku order (the deadlock-free order every writer uses).
LOCK_SKUS = """
SELECT sku, available, reserved, version FROM inventory
WHERE tenant_id = $1 AND sku = ANY($2::text[])
ORDER BY sku FOR UPDATE
"""

# As LOCK_SKUS, with what one order holds of each (NULL: nothing).
LOCK_SKUS_WITH_HOLDING = """
SELECT i.sku, i.available, i.reserved, i.version, r.quantity AS held
FROM inventory i
LEFT JOIN reservations r ON r.tenant_id = i.tenant_id AND r.sku = i.sku AND r.order_id = $3
WHERE i.tenant_id = $1 AND i.sku = ANY($2::text[])
ORDER BY i.sku FOR UPDATE OF i
"""

# One sku's projection after its events: the row, reservations added ($7/$8), removed ($9).
PROJECT_STOCK = """
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


async def lock_skus(
    conn: AsyncConnection, tenant_id: str, skus: Sequence[str]
) -> list[asyncpg.Record]:
    """Lock the tenant's rows of ``skus`` (sorted by the statement) until commit."""
    rows: list[asyncpg.Record] = await (await driver(conn)).fetch(LOCK_SKUS, tenant_id, skus)
    return rows


async def lock_skus_with_holding(
    conn: AsyncConnection, tenant_id: str, skus: Sequence[str], order_id: str
) -> list[asyncpg.Record]:
    """As ``lock_skus``, each row with ``held``: what ``order_id`` holds of it (or None)."""
    db = await driver(conn)
    rows: list[asyncpg.Record] = await db.fetch(LOCK_SKUS_WITH_HOLDING, tenant_id, skus, order_id)
    return rows


async def project_stock(
    conn: AsyncConnection,
    tenant_id: str,
    sku: str,
    *,
    available: int,
    reserved: int,
    version: int,
    now: datetime,
    added: dict[str, int],
    removed: Sequence[str],
) -> None:
    """Move one sku's row and its reservations (added: order -> units; removed: orders)."""
    await (await driver(conn)).execute(
        PROJECT_STOCK,
        tenant_id,
        sku,
        available,
        reserved,
        version,
        now,
        list(added),
        list(added.values()),
        list(removed),
    )


# --- stock: cold paths ---------------------------------------------------------------------


async def insert_stock(
    conn: AsyncConnection,
    tenant_id: str,
    sku: str,
    *,
    stream_id: str,
    available: int,
    version: int,
    now: datetime,
) -> None:
    """The row of a sku stocked for the first time."""
    await conn.execute(
        insert(t.inventory).values(
            tenant_id=tenant_id,
            sku=sku,
            stream_id=stream_id,
            available=available,
            reserved=0,
            version=version,
            updated_at=now,
        )
    )


async def stock_row(conn: AsyncConnection, tenant_id: str, sku: str) -> Any | None:
    return (
        await conn.execute(
            select(t.inventory).where(
                t.inventory.c.tenant_id == tenant_id, t.inventory.c.sku == sku
            )
        )
    ).one_or_none()
