"""Every SQL statement of customer notifications: contacts, events awaiting a contact, and the
notifications themselves (the webhook side's statements are in ``repository``).

The notification insert is the one that matters: ``ON CONFLICT DO NOTHING`` on the unique
(event, channel, recipient) key, returning only the rows it inserted, so a redelivered event,
a released event and a fallback all make at most one message per key, with no
check-then-insert race between two consumers or a consumer and a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.keyset import Position, newest_first_page
from waybill.notifier import tables as t

# One order's contact and its waiting events change under this lock (transaction-scoped): the
# consumer that parks an event and the one that records the contact cannot miss each other.
LOCK_ORDER = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def lock_order(conn: AsyncConnection, tenant_id: str, order_id: str) -> None:
    await conn.execute(LOCK_ORDER, {"key": f"notifier.contact:{tenant_id}:{order_id}"})


async def save_contact(conn: AsyncConnection, values: dict[str, Any], *, overwrite: bool) -> None:
    """Record an order's contact; ``overwrite`` (order.paid v2) replaces what order.placed
    gave, otherwise an existing contact is kept (an order.placed read after the order.paid)."""
    c = t.order_contacts
    statement = insert(c).values(**values)
    if overwrite:
        keep = {k: statement.excluded[k] for k in ("customer_id", "email", "phone", "source")}
        statement = statement.on_conflict_do_update(
            index_elements=[c.c.tenant_id, c.c.order_id],
            set_={**keep, "updated_at": statement.excluded.updated_at},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[c.c.tenant_id, c.c.order_id])
    await conn.execute(statement)


async def contact(conn: AsyncConnection, tenant_id: str, order_id: str) -> Any | None:
    c = t.order_contacts
    return (
        await conn.execute(select(c).where(c.c.tenant_id == tenant_id, c.c.order_id == order_id))
    ).one_or_none()


async def park(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(
        insert(t.awaiting_contact)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


async def take_parked(conn: AsyncConnection, tenant_id: str, order_id: str) -> list[Any]:
    """Remove and return the order's events that waited for its contact, oldest first."""
    a = t.awaiting_contact
    rows = await conn.execute(
        delete(a).where(a.c.tenant_id == tenant_id, a.c.order_id == order_id).returning(*a.c)
    )
    return sorted(rows, key=lambda r: r.parked_at)


async def insert_notifications(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Insert those not there yet; returns the inserted ones (id, channel, priority, send_at)."""
    if not rows:
        return []
    n = t.notifications
    statement = (
        insert(n)
        .values(list(rows))
        .on_conflict_do_nothing(constraint="uq_notifications_event_channel")
        .returning(n.c.notification_id, n.c.channel, n.c.priority, n.c.send_at)
    )
    return list(await conn.execute(statement))


async def notification(
    conn: AsyncConnection, notification_id: str, *, lock: bool = False
) -> Any | None:
    query = select(t.notifications).where(t.notifications.c.notification_id == notification_id)
    return (await conn.execute(query.with_for_update() if lock else query)).one_or_none()


async def update_notification(
    conn: AsyncConnection, notification_id: str, values: dict[str, Any]
) -> None:
    await conn.execute(
        update(t.notifications)
        .where(t.notifications.c.notification_id == notification_id)
        .values(**values)
    )


async def notifications_page(
    engine: AsyncEngine,
    tenant_id: str,
    order_id: str | None,
    *,
    limit: int,
    after: Position | None,
) -> tuple[Sequence[Any], Position | None]:
    n = t.notifications
    query = select(n).where(n.c.tenant_id == tenant_id)
    if order_id is not None:
        query = query.where(n.c.order_id == order_id)
    return await newest_first_page(
        engine, query, created=n.c.created_at, key=n.c.notification_id, limit=limit, after=after
    )
