"""Every SQL statement of the notifier (STYLE.md: the shape of a service).

Fan-out runs once per consumed event (every public event of orders, payments and shipping), so
its two statements are ``$n`` driver statements (ADR 0007): the tenant's endpoints that want the
type, and one multi-row insert of the messages whose unique (endpoint, event) key makes a
redelivered event add nothing. The API's reads and writes are SQLAlchemy over ``tables``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.db import driver
from waybill.common.keyset import Position, newest_first_page
from waybill.notifier import tables as t

ENDPOINTS_FOR = """
SELECT endpoint_id FROM webhook_endpoints
WHERE tenant_id = $1 AND status = 'active' AND (event_types @> ARRAY[$2::text]
                                                OR event_types @> ARRAY['*'])
"""

INSERT_MESSAGES = """
INSERT INTO webhook_messages (message_id, tenant_id, endpoint_id, event_id, event_type, subject,
                              body, status, attempts, next_attempt_at, created_at)
SELECT m.message_id, $1, m.endpoint_id, $2, $3, $4, $5::jsonb, 'pending', 0, $6, $6
FROM unnest($7::text[], $8::text[]) AS m(message_id, endpoint_id)
ON CONFLICT ON CONSTRAINT uq_webhook_messages_endpoint_event DO NOTHING
RETURNING message_id, endpoint_id
"""


async def endpoints_for(conn: AsyncConnection, tenant_id: str, event_type: str) -> list[str]:
    rows = await (await driver(conn)).fetch(ENDPOINTS_FOR, tenant_id, event_type)
    return [r["endpoint_id"] for r in rows]


async def insert_messages(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    event_id: Any,
    event_type: str,
    subject: str,
    body: dict[str, Any],
    now: datetime,
    messages: Sequence[tuple[str, str]],  # (message id, endpoint id)
) -> list[tuple[str, str]]:
    """Insert the messages not there yet; returns those inserted (message id, endpoint id)."""
    rows = await (await driver(conn)).fetch(
        INSERT_MESSAGES,
        tenant_id,
        event_id,
        event_type,
        subject,
        json.dumps(body, separators=(",", ":")),
        now,
        [m for m, _ in messages],
        [e for _, e in messages],
    )
    return [(r["message_id"], r["endpoint_id"]) for r in rows]


async def insert_endpoint(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    return (
        await conn.execute(
            t.webhook_endpoints.insert().values(**values).returning(*t.webhook_endpoints.c)
        )
    ).one()


async def endpoint_row(conn: AsyncConnection, tenant_id: str, endpoint_id: str) -> Any | None:
    return (
        await conn.execute(
            select(t.webhook_endpoints).where(
                t.webhook_endpoints.c.endpoint_id == endpoint_id,
                t.webhook_endpoints.c.tenant_id == tenant_id,
            )
        )
    ).one_or_none()


async def update_endpoint(
    conn: AsyncConnection, tenant_id: str, endpoint_id: str, values: dict[str, Any]
) -> Any | None:
    return (
        await conn.execute(
            update(t.webhook_endpoints)
            .where(
                t.webhook_endpoints.c.endpoint_id == endpoint_id,
                t.webhook_endpoints.c.tenant_id == tenant_id,
            )
            .values(**values)
            .returning(*t.webhook_endpoints.c)
        )
    ).one_or_none()


async def delete_endpoint(conn: AsyncConnection, tenant_id: str, endpoint_id: str) -> bool:
    deleted = await conn.execute(
        delete(t.webhook_endpoints).where(
            t.webhook_endpoints.c.endpoint_id == endpoint_id,
            t.webhook_endpoints.c.tenant_id == tenant_id,
        )
    )
    return bool(deleted.rowcount)


async def endpoints_page(
    engine: AsyncEngine, tenant_id: str, *, limit: int, after: Position | None
) -> tuple[Sequence[Any], Position | None]:
    return await newest_first_page(
        engine,
        select(t.webhook_endpoints).where(t.webhook_endpoints.c.tenant_id == tenant_id),
        created=t.webhook_endpoints.c.created_at,
        key=t.webhook_endpoints.c.endpoint_id,
        limit=limit,
        after=after,
    )


async def messages_page(
    engine: AsyncEngine, endpoint_id: str, *, limit: int, after: Position | None
) -> tuple[Sequence[Any], Position | None]:
    return await newest_first_page(
        engine,
        select(t.webhook_messages).where(t.webhook_messages.c.endpoint_id == endpoint_id),
        created=t.webhook_messages.c.created_at,
        key=t.webhook_messages.c.message_id,
        limit=limit,
        after=after,
    )


async def attempts_of(conn: AsyncConnection, message_ids: Sequence[str]) -> dict[str, list[Any]]:
    rows = await conn.execute(
        select(t.webhook_attempts)
        .where(t.webhook_attempts.c.message_id.in_(list(message_ids)))
        .order_by(t.webhook_attempts.c.message_id, t.webhook_attempts.c.at)
    )
    found: dict[str, list[Any]] = {m: [] for m in message_ids}
    for row in rows:
        found[row.message_id].append(row)
    return found


# --- deliveries (the worker) ---------------------------------------------------------------


async def message_to_send(conn: AsyncConnection, message_id: str) -> Any | None:
    """The message with what sending it needs from its endpoint."""
    e, m = t.webhook_endpoints, t.webhook_messages
    return (
        await conn.execute(
            select(
                m.c.message_id,
                m.c.tenant_id,
                m.c.endpoint_id,
                m.c.event_type,
                m.c.body,
                m.c.status.label("message_status"),
                m.c.attempts,
                m.c.event_id,
                m.c.subject,
                m.c.created_at,
                e.c.url,
                e.c.headers,
                e.c.status.label("endpoint_status"),
                e.c.rate_limit_per_s,
                e.c.secret,
                e.c.previous_secret,
                e.c.previous_secret_expires_at,
                e.c.last_success_at,
                e.c.created_at.label("endpoint_created_at"),
            )
            .join(e, e.c.endpoint_id == m.c.endpoint_id)
            .where(m.c.message_id == message_id)
        )
    ).one_or_none()


# The sliding window of rate_limit_per_s, one statement under the endpoint's row lock (so every
# replica shares it): forget the starts older than a second, then either record this start
# (granted) or not (the window is full; the oldest start says when a slot frees). An endpoint
# without a limit is always granted and records nothing.
# The start's time is the caller's clock, but never earlier than the last start recorded: a
# worker whose clock was read before it waited for the lock would otherwise record a start in
# the past, inside a window the others have already pruned (CI caught 7 starts in a second
# at a limit of 5 on a loaded machine). Reservations are serialised by the lock, so the last
# recorded start is a lower bound of the real time and the times recorded never go back.
RESERVE_START = """
WITH e AS (
    SELECT endpoint_id, rate_limit_per_s, clock.t,
           ARRAY(SELECT s FROM unnest(recent_starts) AS s
                 WHERE s > clock.t - interval '1 second' ORDER BY s) AS live
    FROM webhook_endpoints,
         LATERAL (SELECT greatest($2::timestamptz,
                                  (SELECT max(s) FROM unnest(recent_starts) AS s)) AS t) AS clock
    WHERE endpoint_id = $1
    FOR UPDATE OF webhook_endpoints
)
UPDATE webhook_endpoints AS w
SET recent_starts = CASE WHEN cardinality(e.live) < e.rate_limit_per_s
                         THEN e.live || e.t ELSE e.live END
FROM e
WHERE w.endpoint_id = e.endpoint_id AND e.rate_limit_per_s IS NOT NULL
RETURNING cardinality(e.live) < e.rate_limit_per_s AS granted, e.live[1] AS oldest, e.t AS at
"""


async def reserve_start(
    conn: AsyncConnection, endpoint_id: str, now: datetime
) -> tuple[float, datetime]:
    """Seconds until the endpoint's rate limit lets an attempt start (0.0: start now; this
    start is recorded in the window), and the start's time to record the attempt at."""
    row = await (await driver(conn)).fetchrow(RESERVE_START, endpoint_id, now)
    if row is None:
        return 0.0, now
    at: datetime = row["at"]
    if row["granted"]:
        return 0.0, at
    wait: float = (row["oldest"] - at).total_seconds() + 1.0
    return max(wait, 0.001), at


async def insert_outbox_record(
    conn: AsyncConnection, event_id: Any, topic: str, key: bytes, value: bytes, headers: Any
) -> None:
    """A Kafka record that is not an event of ours (a dead letter), published by the relay
    with the transaction's events."""
    await conn.execute(
        t.outbox.insert().values(
            event_id=event_id, topic=topic, key=key, value=value, headers=headers
        )
    )


async def first_attempt_at(conn: AsyncConnection, message_id: str) -> datetime | None:
    first: datetime | None = await conn.scalar(
        select(func.min(t.webhook_attempts.c.at)).where(
            t.webhook_attempts.c.message_id == message_id
        )
    )
    return first


async def record_attempt(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(t.webhook_attempts.insert().values(**values))


async def update_message(conn: AsyncConnection, message_id: str, values: dict[str, Any]) -> None:
    await conn.execute(
        update(t.webhook_messages)
        .where(t.webhook_messages.c.message_id == message_id)
        .values(**values)
    )


async def lock_endpoint_version(conn: AsyncConnection, endpoint_id: str) -> int | None:
    """Lock the endpoint (its stream's writers serialise on it) and return its version."""
    version: int | None = await conn.scalar(
        select(t.webhook_endpoints.c.version)
        .where(t.webhook_endpoints.c.endpoint_id == endpoint_id)
        .with_for_update()
    )
    return version


async def message_row(
    conn: AsyncConnection, tenant_id: str, message_id: str, *, lock: bool = False
) -> Any | None:
    query = select(t.webhook_messages).where(
        t.webhook_messages.c.message_id == message_id,
        t.webhook_messages.c.tenant_id == tenant_id,
    )
    return (await conn.execute(query.with_for_update() if lock else query)).one_or_none()


async def failed_messages(
    conn: AsyncConnection, endpoint_id: str, since: datetime, until: datetime | None
) -> list[Any]:
    query = select(t.webhook_messages.c.message_id, t.webhook_messages.c.subject).where(
        t.webhook_messages.c.endpoint_id == endpoint_id,
        t.webhook_messages.c.status == "failed",
        t.webhook_messages.c.created_at >= since,
    )
    if until is not None:
        query = query.where(t.webhook_messages.c.created_at < until)
    return list(await conn.execute(query.order_by(t.webhook_messages.c.created_at)))


async def reopen_messages(conn: AsyncConnection, message_ids: Sequence[str], now: datetime) -> None:
    await conn.execute(
        update(t.webhook_messages)
        .where(t.webhook_messages.c.message_id.in_(list(message_ids)))
        # A new schedule: attempts counts this round's (the attempts table keeps them all).
        .values(status="pending", attempts=0, next_attempt_at=now, finished_at=None)
    )
