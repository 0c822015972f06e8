"""Every SQL statement of the monitor: its copy of consumed events, the read models, the dead
letters and their audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, Table, and_, case, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.shipping import ACTIVE_SHIPMENT_STATUSES
from waybill.monitor.tables import (
    READ_MODELS,
    agent_states,
    consumed_events,
    dead_letter_audit,
    dead_letters,
    dlq_records,
    payment_states,
    shipment_states,
    webhook_messages,
)

# Facts a later event adds to (each refund its own amount); every other fact fills in.
_ADDED = frozenset({"refunded_cents"})
# Facts that belong to the status: they change with it, under the same sequence guard (an
# agent's profile is one such fact set: each of its events carries all of it).
_WITH_STATUS = frozenset({"at", "name", "capacity", "service_zip_codes"})
# Facts set by one event of their own (a capture's amount), whatever the order.
_SET = frozenset({"captured_cents"})


# --- consumed events (the monitor's copy; its key is the inbox) ---------------------------


async def record_event(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    """Keep a consumed event; False if it was consumed before (a redelivery)."""
    inserted = await conn.execute(
        pg_insert(consumed_events)
        .values(**row)
        .on_conflict_do_nothing(index_elements=[consumed_events.c.event_id])
        .returning(consumed_events.c.event_id)
    )
    return inserted.first() is not None


async def consumed_in_order(conn: AsyncConnection, batch: int = 1000) -> AsyncIterator[Any]:
    """Every consumed event, in the order it was consumed."""
    after = 0
    while True:
        rows = (
            await conn.execute(
                select(consumed_events)
                .where(consumed_events.c.position > after)
                .order_by(consumed_events.c.position)
                .limit(batch)
            )
        ).all()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].position


async def recent_events(conn: AsyncConnection, tenant_id: str, limit: int) -> Sequence[Any]:
    c = consumed_events.c
    query = select(c.event_id, c.type, c.subject, c.sequence, c.time, c.topic)
    query = query.where(c.tenant_id == tenant_id).order_by(c.time.desc(), c.position.desc())
    return (await conn.execute(query.limit(limit))).all()


# --- read models ----------------------------------------------------------------------------


async def project(
    conn: AsyncConnection,
    table: Table,
    *,
    tenant_id: str,
    key: str,
    sequence: int,
    status: str | None,
    facts: dict[str, Any],
) -> None:
    """Upsert one read model row under the sequence guard (``projections``). ``status`` None:
    the event only adds facts (an assignment's agent); the status and its sequence stay."""
    key_column = next(c for c in table.primary_key.columns if c.name != "tenant_id")
    statement = pg_insert(table).values(
        tenant_id=tenant_id,
        **{key_column.name: key},
        status=status,
        sequence=sequence if status is not None else 0,
        **facts,
    )
    existing, new = table.c, statement.excluded
    newer = new.sequence > existing.sequence
    changes: dict[str, Any] = {"updated_at": func.now()}
    if status is not None:
        changes["status"] = case((newer, new.status), else_=existing.status)
        changes["sequence"] = func.greatest(existing.sequence, new.sequence)
    for name in facts:
        if name in _ADDED:
            changes[name] = existing[name] + new[name]
        elif name in _WITH_STATUS:
            changes[name] = case((newer, new[name]), else_=existing[name])
        elif name in _SET:
            changes[name] = new[name]
        else:
            changes[name] = func.coalesce(existing[name], new[name])
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.tenant_id, key_column], set_=changes
        )
    )


def _active_shipments() -> Any:
    """The agent's shipments in an active status (shipping's definition, from the contract)."""
    return (
        select(func.count())
        .select_from(shipment_states)
        .where(
            shipment_states.c.tenant_id == agent_states.c.tenant_id,
            shipment_states.c.agent_id == agent_states.c.agent_id,
            shipment_states.c.status.in_(ACTIVE_SHIPMENT_STATUSES),
        )
        .scalar_subquery()
    )


async def agents_with_load(conn: AsyncConnection, tenant_id: str) -> Sequence[Any]:
    """Every agent of the tenant with its active shipments, by agent id (the capacity view)."""
    query = (
        select(agent_states, _active_shipments().label("active_shipments"))
        .where(agent_states.c.tenant_id == tenant_id)
        .order_by(agent_states.c.agent_id)
    )
    return (await conn.execute(query)).all()


async def active_by_postal_code(conn: AsyncConnection, tenant_id: str) -> dict[str, int]:
    """Active shipments per postal code, assigned or still waiting for an agent."""
    c = shipment_states.c
    rows = await conn.execute(
        select(c.postal_code, func.count())
        .where(
            c.tenant_id == tenant_id,
            c.status.in_(ACTIVE_SHIPMENT_STATUSES),
            c.postal_code.is_not(None),
        )
        .group_by(c.postal_code)
    )
    return {code: int(count) for code, count in rows}


async def truncate_read_models(conn: AsyncConnection) -> None:
    names = ", ".join(table.name for table in READ_MODELS)
    await conn.execute(text(f"TRUNCATE {names}"))


async def counts_by(
    conn: AsyncConnection, table: Table, tenant_id: str, *columns: str
) -> Sequence[Any]:
    """Rows of a read model by ``columns``, with their count."""
    grouped = [table.c[name] for name in columns]
    query = (
        select(*grouped, func.count().label("count"))
        .where(table.c.tenant_id == tenant_id)
        .group_by(*grouped)
        .order_by(*grouped)
    )
    return (await conn.execute(query)).all()


async def revenue(conn: AsyncConnection, tenant_id: str) -> Sequence[Any]:
    """Captured minus refunded, by currency, of the payments that were captured."""
    c = payment_states.c
    query = (
        select(
            c.currency,
            func.sum(c.captured_cents).label("captured_cents"),
            func.sum(c.refunded_cents).label("refunded_cents"),
        )
        .where(c.tenant_id == tenant_id, c.currency.is_not(None), c.captured_cents > 0)
        .group_by(c.currency)
        .order_by(c.currency)
    )
    return (await conn.execute(query)).all()


async def webhook_outcomes(
    conn: AsyncConnection, tenant_id: str, since: timedelta
) -> Sequence[Any]:
    c = webhook_messages.c
    query = (
        select(c.status, func.count().label("count"))
        .where(c.tenant_id == tenant_id, c.at >= datetime.now(UTC) - since)
        .group_by(c.status)
    )
    return (await conn.execute(query)).all()


# --- dead letters ---------------------------------------------------------------------------


async def insert_dead_letter(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    """A new dead letter; False if its dlq record was ingested before."""
    inserted = await conn.execute(
        pg_insert(dead_letters)
        .values(**row)
        .on_conflict_do_nothing(constraint="uq_dead_letters_record")
        .returning(dead_letters.c.id)
    )
    return inserted.first() is not None


async def claim_dlq_record(
    conn: AsyncConnection, topic: str, partition: int, offset: int, dead_letter_id: str
) -> bool:
    """Note that a dlq record was ingested (into ``dead_letter_id``); False if it was before."""
    inserted = await conn.execute(
        pg_insert(dlq_records)
        .values(topic=topic, partition=partition, offset=offset, dead_letter_id=dead_letter_id)
        .on_conflict_do_nothing()
        .returning(dlq_records.c.dead_letter_id)
    )
    return inserted.first() is not None


async def find_dead_letter(
    conn: AsyncConnection, dead_letter_id: str, tenant_id: str | None = None, *, lock: bool
) -> Row[Any] | None:
    """A dead letter by id (of ``tenant_id`` when given), locked for the transaction if told."""
    query = select(dead_letters).where(dead_letters.c.id == dead_letter_id)
    if tenant_id is not None:
        query = query.where(dead_letters.c.tenant_id == tenant_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def open_delivery_letter(
    conn: AsyncConnection, tenant_id: str, delivery_id: str
) -> Row[Any] | None:
    """The unresolved dead letter of a webhook message, if any (locked)."""
    c = dead_letters.c
    query = select(dead_letters).where(
        c.tenant_id == tenant_id,
        c.delivery_id == delivery_id,
        c.status.in_(("pending", "retrying")),
    )
    return (await conn.execute(query.with_for_update())).first()


async def update_dead_letter(conn: AsyncConnection, dead_letter_id: str, **changes: Any) -> None:
    await conn.execute(
        update(dead_letters)
        .where(dead_letters.c.id == dead_letter_id)
        .values(**changes, updated_at=func.now())
    )


async def add_audit(
    conn: AsyncConnection, dead_letter_id: str, actor: str, action: str, detail: dict[str, Any]
) -> None:
    await conn.execute(
        insert(dead_letter_audit).values(
            dead_letter_id=dead_letter_id, actor=actor, action=action, detail=detail
        )
    )


async def audit_of(conn: AsyncConnection, dead_letter_id: str) -> Sequence[Any]:
    c = dead_letter_audit.c
    query = select(c.actor, c.action, c.detail, c.at).where(c.dead_letter_id == dead_letter_id)
    return (await conn.execute(query.order_by(c.id))).all()


def dead_letters_query(tenant_id: str, filters: dict[str, str | None]) -> Select[Any]:
    """The tenant's dead letters matching ``filters`` (column -> value; None: any)."""
    conditions = [dead_letters.c.tenant_id == tenant_id]
    conditions += [dead_letters.c[name] == value for name, value in filters.items() if value]
    return select(dead_letters).where(and_(*conditions))


def groups_query(tenant_id: str, filters: dict[str, str | None]) -> Select[Any]:
    """Dead letters by fingerprint: count, first and last seen (a subquery to page over)."""
    letters = dead_letters_query(tenant_id, filters).subquery()
    return select(
        letters.c.fingerprint,
        func.count().label("count"),
        func.min(letters.c.created_at).label("first_seen"),
        func.max(letters.c.created_at).label("last_seen"),
        func.max(letters.c.failure_type).label("failure_type"),
        func.max(letters.c.service).label("service"),
        func.max(letters.c.consumer_group).label("consumer_group"),
        func.count().filter(letters.c.status == "pending").label("pending"),
    ).group_by(letters.c.fingerprint)


async def dead_letter_counts(conn: AsyncConnection, tenant_id: str) -> Sequence[Any]:
    c = dead_letters.c
    query = (
        select(c.status, c.failure_type, func.count().label("count"))
        .where(c.tenant_id == tenant_id)
        .group_by(c.status, c.failure_type)
        .order_by(c.status, c.failure_type)
    )
    return (await conn.execute(query)).all()
