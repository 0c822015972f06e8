"""Every SQL statement of the payments service (STYLE.md: the shape of a service).

Handlers, webhooks and workers decide *when* to read or write; this module says *how*. The
statements of the per-order path (opening a payment, locking it, writing the projection after
new events) are plain ``$n`` driver statements (``waybill.common.db.driver``): SQLAlchemy's
per-statement CPU is about as large as the driver's (ADR 0007), so each of them stays one
driver call, one round trip. Cold paths (the API's reads, webhook bookkeeping, the sync's scan)
use SQLAlchemy over the table definitions of ``tables``.

Each function takes the connection of the caller's transaction, so a command still writes its
events, projection, outbox, inbox and queue rows together (STYLE.md: one transaction per
command); only the keyset page opens its own (``newest_first_page`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.db import driver
from waybill.common.keyset import Position, newest_first_page
from waybill.payments import tables as t
from waybill.payments.domain import payment as p

# --- the hot path: driver statements ------------------------------------------------------

# Opens the order's payment row. It is also the existence check: no row back means the
# payment exists (order.placed redelivered or replayed); a concurrent copy waits for the first
# transaction and then gets no row.
INSERT_PAYMENT = """
INSERT INTO payments (id, tenant_id, order_id, status, amount_cents, currency, payment_method,
                      provider, refunded_cents, order_closed, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, false, $9, $10, $10)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# Serialises the writers of one payment (held until commit); no row: not this tenant's payment.
# Not folded into the stream read: only a statement started after the lock was granted sees the
# events the writer we waited for appended (one statement reads one snapshot).
LOCK_PAYMENT = "SELECT id FROM payments WHERE id = $1 AND tenant_id = $2 FOR UPDATE"

# The projection after new events.
UPDATE_PAYMENT = """
UPDATE payments
SET status = $2, provider_payment_id = $3, failure_code = $4, failure_reason = $5,
    refunded_cents = $6, order_closed = $7, version = $8, updated_at = $9
WHERE id = $1
"""


async def insert_payment(
    conn: AsyncConnection, tenant_id: str, state: p.Payment, now: datetime
) -> bool:
    """Open the payment row of ``state`` (just created); False if it existed already."""
    opened = await (await driver(conn)).fetchval(
        INSERT_PAYMENT,
        state.payment_id,
        tenant_id,
        state.order_id,
        state.status.value,
        state.amount_cents,
        state.currency,
        state.payment_method,
        state.provider,
        state.version,
        now,
    )
    return opened is not None


async def lock_payment(conn: AsyncConnection, tenant_id: str, payment_id: str) -> bool:
    """Lock the tenant's payment row until commit; False if the tenant has no such payment."""
    locked = await (await driver(conn)).fetchval(LOCK_PAYMENT, payment_id, tenant_id)
    return locked is not None


async def update_payment(conn: AsyncConnection, state: p.Payment, now: datetime) -> None:
    """Write the projection of ``state`` (the payment after its new events)."""
    await (await driver(conn)).execute(
        UPDATE_PAYMENT,
        state.payment_id,
        state.status.value,
        state.provider_payment_id,
        state.failure_code,
        state.failure_reason,
        state.refunded_cents,
        state.order_closed,
        state.version,
        now,
    )


# --- payment reads (cold paths) -----------------------------------------------------------


async def tenant_of(conn: AsyncConnection, payment_id: str) -> str | None:
    row = await conn.execute(select(t.payments.c.tenant_id).where(t.payments.c.id == payment_id))
    return row.scalar_one_or_none()


async def find_by_provider_id(conn: AsyncConnection, provider_id: str) -> str | None:
    """Our payment id for the provider's intent id (a webhook without our metadata)."""
    row = await conn.execute(
        select(t.payments.c.id).where(t.payments.c.provider_payment_id == provider_id)
    )
    return row.scalars().first()


async def processing_since(
    conn: AsyncConnection, before: datetime, *, tenant_id: str | None, limit: int
) -> list[tuple[str, str, str | None]]:
    """(payment id, tenant, provider payment id) of payments processing since ``before``,
    longest waiting first."""
    query = select(t.payments.c.id, t.payments.c.tenant_id, t.payments.c.provider_payment_id)
    query = query.where(t.payments.c.status == "processing", t.payments.c.updated_at <= before)
    if tenant_id is not None:
        query = query.where(t.payments.c.tenant_id == tenant_id)
    rows = (await conn.execute(query.order_by(t.payments.c.updated_at).limit(limit))).all()
    return [(r.id, r.tenant_id, r.provider_payment_id) for r in rows]


async def payment_row(conn: AsyncConnection, tenant_id: str, payment_id: str) -> Any | None:
    """The tenant's payment row (for ``PaymentView``), None if the tenant has no such payment."""
    result = await conn.execute(
        select(t.payments).where(t.payments.c.id == payment_id, t.payments.c.tenant_id == tenant_id)
    )
    return result.one_or_none()


async def payments_page(
    engine: AsyncEngine, tenant_id: str, *, order_id: str | None, limit: int, after: Position | None
) -> tuple[Sequence[Any], Position | None]:
    """One newest-first keyset page of the tenant's payment rows (optionally of one order)."""
    query = select(t.payments).where(t.payments.c.tenant_id == tenant_id)
    if order_id is not None:
        query = query.where(t.payments.c.order_id == order_id)
    return await newest_first_page(
        engine,
        query,
        created=t.payments.c.created_at,
        key=t.payments.c.id,
        limit=limit,
        after=after,
    )


# --- provider webhooks --------------------------------------------------------------------


async def record_provider_event(conn: AsyncConnection, event_id: str, event_type: str) -> bool:
    """Remember a provider event id; False if it was seen before (a duplicate). Two copies
    arriving together serialise on the primary key, so exactly one gets True."""
    fresh = await conn.execute(
        pg_insert(t.provider_events)
        .values(id=event_id, type=event_type)
        .on_conflict_do_nothing()
        .returning(t.provider_events.c.id)
    )
    return fresh.first() is not None


async def link_provider_event(conn: AsyncConnection, event_id: str, payment_id: str) -> None:
    """Note which payment a recorded provider event was about."""
    await conn.execute(
        t.provider_events.update()
        .where(t.provider_events.c.id == event_id)
        .values(payment_id=payment_id)
    )
