"""The inbox: which events a consumer group has already applied.

The row is written in the same transaction as the handler's effects, so "recorded" and
"applied" are one fact: a redelivered event finds its row and is skipped.

The statement alone is timed (``waybill_consumer_inbox_check_duration_seconds``): the duplicate
detection time, without the transaction's BEGIN or a pool checkout before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.metrics import inbox_check
from waybill.common.db import driver


async def record(
    conn: AsyncConnection, inbox: Table, group: str, event_id: UUID, *, service: str = ""
) -> bool:
    """Record ``event_id`` for ``group``; True if this is the first time it is seen."""
    return event_id in await record_many(conn, inbox, group, [event_id], service=service)


async def record_many(
    conn: AsyncConnection,
    inbox: Table,
    group: str,
    event_ids: Iterable[UUID],
    *,
    service: str = "",
) -> set[UUID]:
    """Record a batch in one statement; returns the ids seen for the first time (the
    statement's time is observed under ``service`` and ``group``)."""
    ids = list(event_ids)
    if not ids:
        return set()
    # DO NOTHING (unlike DO UPDATE) tolerates the same key twice in one statement, so a batch
    # that holds one event twice still records it once. One statement text for every batch
    # size (an array parameter), on the driver: this runs for every consumed batch.
    statement = (
        f'INSERT INTO "{inbox.name}" (consumer_group, event_id)'
        " SELECT $1, unnest($2::uuid[])"
        " ON CONFLICT (consumer_group, event_id) DO NOTHING RETURNING event_id"
    )
    raw = await driver(conn)
    with inbox_check(service, group):
        rows = await raw.fetch(statement, group, ids)
    return {row["event_id"] for row in rows}
