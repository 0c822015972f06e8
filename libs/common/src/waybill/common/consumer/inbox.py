"""The inbox: which events a consumer group has already applied.

The row is written in the same transaction as the handler's effects, so "recorded" and
"applied" are one fact: a redelivered event finds its row and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection


async def record(conn: AsyncConnection, inbox: Table, group: str, event_id: UUID) -> bool:
    """Record ``event_id`` for ``group``; True if this is the first time it is seen."""
    return event_id in await record_many(conn, inbox, group, [event_id])


async def record_many(
    conn: AsyncConnection, inbox: Table, group: str, event_ids: Iterable[UUID]
) -> set[UUID]:
    """Record a batch in one statement; returns the ids seen for the first time."""
    rows = [{"consumer_group": group, "event_id": event_id} for event_id in event_ids]
    if not rows:
        return set()
    # DO NOTHING (unlike DO UPDATE) tolerates the same key twice in one statement, so a batch
    # that holds one event twice still records it once.
    statement = (
        insert(inbox)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer_group, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )
    result = await conn.execute(statement)
    return set(result.scalars())
