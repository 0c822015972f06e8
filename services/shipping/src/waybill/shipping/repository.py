"""Every SQL statement of the shipping service (STYLE.md: the shape of a service).

Handlers and workers decide *when* to read or write; this module says *how*. The row locks
are driver statements (``waybill.common.db.driver``) so that a lock that is not available
surfaces as asyncpg's ``LockNotAvailableError`` (SQLSTATE 55P03), which the handlers turn into
409s. The statements every paid order runs (opening its shipment, the tenant's settings, the
postal code's candidates, the projection) are ``$n`` driver statements too: SQLAlchemy's
compile-and-cache-key work was a sixth of shipping's CPU per order under ``waybill load``
(py-spy, ADR 0007's finding again). The rest (reads, agents, commands an agent makes a few
times per order) is SQLAlchemy over ``tables``.

Each function takes the connection of the caller's transaction, so a command still writes its
events, projections, outbox and inbox rows together; only the keyset pages open their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.db import driver
from waybill.common.keyset import Position, newest_first_page
from waybill.shipping import tables as t
from waybill.shipping.domain.agents import Candidate, Shift
from waybill.shipping.domain.shipment import ACTIVE, Shipment

ACTIVE_STATUSES = sorted(s.value for s in ACTIVE)

# --- locks ---------------------------------------------------------------------------------


async def set_lock_timeout(conn: AsyncConnection, timeout_ms: int) -> None:
    """Bound every lock wait of this transaction (then 55P03 instead of queueing forever)."""
    await (await driver(conn)).execute(f"SET LOCAL lock_timeout = '{int(timeout_ms)}ms'")


LOCK_SHIPMENT = "SELECT shipment_id FROM shipments WHERE shipment_id = $1 AND tenant_id = $2"


async def lock_shipment(
    conn: AsyncConnection, tenant_id: str, shipment_id: str, *, nowait: bool = False
) -> bool:
    """Lock the tenant's shipment row until commit (every writer of its stream does, first);
    False: no such shipment. ``nowait``: fail at once (55P03) if another transaction holds it."""
    sql = LOCK_SHIPMENT + (" FOR UPDATE NOWAIT" if nowait else " FOR UPDATE")
    return await (await driver(conn)).fetchval(sql, shipment_id, tenant_id) is not None


async def lock_shipment_if_free(conn: AsyncConnection, shipment_id: str) -> str | None:
    """The dispatcher's lock: the tenant of the shipment, or None if someone holds it now."""
    tenant: str | None = await (await driver(conn)).fetchval(
        "SELECT tenant_id FROM shipments WHERE shipment_id = $1 FOR UPDATE SKIP LOCKED",
        shipment_id,
    )
    return tenant


async def lock_agent(conn: AsyncConnection, tenant_id: str, agent_id: str) -> Any | None:
    """Lock the agent's row (serialises its capacity checks) and return it."""
    return await (await driver(conn)).fetchrow(
        "SELECT agent_id, capacity, active FROM agents"
        " WHERE agent_id = $1 AND tenant_id = $2 FOR UPDATE",
        agent_id,
        tenant_id,
    )


# --- shipments -----------------------------------------------------------------------------


INSERT_SHIPMENT = """
INSERT INTO shipments (shipment_id, tenant_id, order_id, status, version, postal_code,
                       sla_due_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $7)
ON CONFLICT DO NOTHING
RETURNING shipment_id
"""

# The projection after new events: every column from the fold of the stream.
PROJECT_SHIPMENT = """
UPDATE shipments
SET status = $2, version = $3, agent_id = $4, assignment_id = $5, attempts = $6,
    failure_reason = $7, sla_breached = $8, delivered_at = $9, open_assignment_id = $10,
    offer_expires_at = $11, waves = $12, code_hash = $13, wrong_codes = $14, dispatch_at = $15,
    updated_at = $16
WHERE shipment_id = $1
"""


async def insert_shipment(
    conn: AsyncConnection, tenant_id: str, state: Shipment, now: datetime
) -> bool:
    """Open the shipment row of a just-created ``state``; False if the order has one already
    (order.paid redelivered: the existence check and the insert are one statement)."""
    assert state.sla_due_at is not None
    inserted = await (await driver(conn)).fetchval(
        INSERT_SHIPMENT,
        state.shipment_id,
        tenant_id,
        state.order_id,
        state.status.value,
        state.postal_code,
        state.sla_due_at,
        now,
    )
    return inserted is not None


async def project_shipment(
    conn: AsyncConnection, state: Shipment, now: datetime, *, dispatch_at: datetime | None
) -> None:
    """The shipment's row after its events (the fold of its stream, column by column)."""
    offer = state.offer
    await (await driver(conn)).execute(
        PROJECT_SHIPMENT,
        state.shipment_id,
        state.status.value,
        state.version,
        state.agent_id,
        state.assignment_id,
        state.attempts,
        state.failure_reason,
        state.sla_breached,
        state.delivered_at,
        offer.assignment_id if offer else None,
        offer.expires_at if offer else None,
        state.waves,
        state.code_hash,
        state.wrong_codes,
        dispatch_at,
        now,
    )


async def shipment_for_order(conn: AsyncConnection, tenant_id: str, order_id: str) -> str | None:
    shipment_id: str | None = await conn.scalar(
        select(t.shipments.c.shipment_id).where(
            t.shipments.c.tenant_id == tenant_id, t.shipments.c.order_id == order_id
        )
    )
    return shipment_id


async def shipment_row(conn: AsyncConnection, tenant_id: str, shipment_id: str) -> Any | None:
    return (
        await conn.execute(
            select(t.shipments).where(
                t.shipments.c.shipment_id == shipment_id, t.shipments.c.tenant_id == tenant_id
            )
        )
    ).one_or_none()


async def shipments_page(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    order_id: str | None,
    status: str | None,
    agent_id: str | None,
    limit: int,
    after: Position | None,
) -> tuple[Sequence[Any], Position | None]:
    """Newest first, one keyset page at a time; ``agent_id``: only that agent's shipments."""
    query = select(t.shipments).where(t.shipments.c.tenant_id == tenant_id)
    if order_id is not None:
        query = query.where(t.shipments.c.order_id == order_id)
    if status is not None:
        query = query.where(t.shipments.c.status == status)
    if agent_id is not None:
        query = query.where(t.shipments.c.agent_id == agent_id)
    return await newest_first_page(
        engine,
        query,
        created=t.shipments.c.created_at,
        key=t.shipments.c.shipment_id,
        limit=limit,
        after=after,
    )


async def due_for_dispatch(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Shipments whose offer ran out, that wait for a wave, or whose recheck is due."""
    rows = await conn.execute(
        select(t.shipments.c.shipment_id)
        .where(t.shipments.c.dispatch_at.is_not(None), t.shipments.c.dispatch_at <= now)
        .order_by(t.shipments.c.dispatch_at)
        .limit(limit)
    )
    return [r.shipment_id for r in rows]


async def sla_due(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(shipment, tenant) past their due time and not reported (ix_shipments_sla_open)."""
    rows = await conn.execute(
        select(t.shipments.c.shipment_id, t.shipments.c.tenant_id)
        .where(
            t.shipments.c.sla_due_at <= now,
            t.shipments.c.sla_breached.is_(False),
            t.shipments.c.status.not_in(["cancelled", "delivered"]),
        )
        .order_by(t.shipments.c.sla_due_at)
        .limit(limit)
    )
    return [(r.shipment_id, r.tenant_id) for r in rows]


async def wake_waiting(
    conn: AsyncConnection, tenant_id: str, zip_codes: Sequence[str], now: datetime
) -> int:
    """Ask the dispatcher to look now at the tenant's shipments that wait for an agent in
    these postal codes (an agent became eligible there)."""
    woken = await conn.execute(
        update(t.shipments)
        .where(
            t.shipments.c.tenant_id == tenant_id,
            t.shipments.c.status == "pending",
            t.shipments.c.agent_id.is_(None),
            t.shipments.c.open_assignment_id.is_(None),
            t.shipments.c.postal_code.in_(list(zip_codes)),
            # Waiting for an event (NULL) or for a later recheck.
            or_(t.shipments.c.dispatch_at.is_(None), t.shipments.c.dispatch_at > now),
        )
        .values(dispatch_at=now)
    )
    return woken.rowcount


async def active_shipments(conn: AsyncConnection, agent_id: str) -> int:
    count = await conn.scalar(
        select(func.count())
        .select_from(t.shipments)
        .where(t.shipments.c.agent_id == agent_id, t.shipments.c.status.in_(ACTIVE_STATUSES))
    )
    return int(count or 0)


# --- offers --------------------------------------------------------------------------------


async def insert_offers(
    conn: AsyncConnection,
    tenant_id: str,
    shipment_id: str,
    postal_code: str | None,
    *,
    assignment_id: str,
    wave: int,
    agent_ids: Sequence[str],
    expires_at: datetime,
    now: datetime,
) -> None:
    await conn.execute(
        pg_insert(t.offers).values(
            [
                {
                    "assignment_id": assignment_id,
                    "agent_id": agent_id,
                    "tenant_id": tenant_id,
                    "shipment_id": shipment_id,
                    "postal_code": postal_code,
                    "wave": wave,
                    "expires_at": expires_at,
                    "status": "offered",
                    "created_at": now,
                    "updated_at": now,
                }
                for agent_id in agent_ids
            ]
        )
    )


async def close_offers(
    conn: AsyncConnection,
    assignment_id: str,
    status: str,
    now: datetime,
    *,
    agent_id: str | None = None,
) -> None:
    """Move the still-open offers of ``assignment_id`` (or one agent's) to ``status``."""
    conditions = [t.offers.c.assignment_id == assignment_id, t.offers.c.status == "offered"]
    if agent_id is not None:
        conditions.append(t.offers.c.agent_id == agent_id)
    await conn.execute(
        update(t.offers).where(and_(*conditions)).values(status=status, updated_at=now)
    )


async def offer_row(
    conn: AsyncConnection, tenant_id: str, assignment_id: str, agent_id: str
) -> Any | None:
    return (
        await conn.execute(
            select(t.offers).where(
                t.offers.c.assignment_id == assignment_id,
                t.offers.c.agent_id == agent_id,
                t.offers.c.tenant_id == tenant_id,
            )
        )
    ).one_or_none()


async def agent_offers(
    engine: AsyncEngine,
    tenant_id: str,
    agent_id: str,
    *,
    status: str | None,
    now: datetime,
    limit: int,
    after: Position | None,
) -> tuple[Sequence[Any], Position | None]:
    """The agent's offers, newest first; ``status='offered'`` lists only the still-open ones."""
    query = select(t.offers).where(
        t.offers.c.tenant_id == tenant_id, t.offers.c.agent_id == agent_id
    )
    if status is not None:
        query = query.where(t.offers.c.status == status)
    if status == "offered":
        query = query.where(t.offers.c.expires_at > now)
    return await newest_first_page(
        engine,
        query,
        created=t.offers.c.created_at,
        key=t.offers.c.assignment_id,
        limit=limit,
        after=after,
    )


# --- agents --------------------------------------------------------------------------------


def _shifts_json(shifts: Sequence[Shift]) -> list[dict[str, Any]]:
    return [
        {"weekday": s.weekday, "start": s.start.strftime("%H:%M"), "end": s.end.strftime("%H:%M")}
        for s in shifts
    ]


async def insert_agent(
    conn: AsyncConnection,
    tenant_id: str,
    agent_id: str,
    *,
    name: str,
    zip_codes: Sequence[str],
    capacity: int,
    shifts: Sequence[Shift],
    key_id: str,
    now: datetime,
) -> Any:
    return (
        await conn.execute(
            pg_insert(t.agents)
            .values(
                agent_id=agent_id,
                tenant_id=tenant_id,
                name=name,
                service_zip_codes=list(zip_codes),
                capacity=capacity,
                shifts=_shifts_json(shifts),
                active=True,
                key_id=key_id,
                created_at=now,
                updated_at=now,
            )
            .returning(*t.agents.c)
        )
    ).one()


async def update_agent(
    conn: AsyncConnection, tenant_id: str, agent_id: str, changes: dict[str, Any], now: datetime
) -> Any | None:
    values = dict(changes)
    if "shifts" in values:
        values["shifts"] = _shifts_json(values["shifts"])
    if "service_zip_codes" in values:
        values["service_zip_codes"] = list(values["service_zip_codes"])
    return (
        await conn.execute(
            update(t.agents)
            .where(t.agents.c.agent_id == agent_id, t.agents.c.tenant_id == tenant_id)
            .values(**values, updated_at=now)
            .returning(*t.agents.c)
        )
    ).one_or_none()


async def agent_row(conn: AsyncConnection, tenant_id: str, agent_id: str) -> Any | None:
    return (
        await conn.execute(
            select(t.agents).where(
                t.agents.c.agent_id == agent_id, t.agents.c.tenant_id == tenant_id
            )
        )
    ).one_or_none()


async def agents_page(
    engine: AsyncEngine, tenant_id: str, *, limit: int, after: Position | None
) -> tuple[Sequence[Any], Position | None]:
    return await newest_first_page(
        engine,
        select(t.agents).where(t.agents.c.tenant_id == tenant_id),
        created=t.agents.c.created_at,
        key=t.agents.c.agent_id,
        limit=limit,
        after=after,
    )


def _active_count() -> Any:
    return (
        select(func.count())
        .select_from(t.shipments)
        .where(
            t.shipments.c.agent_id == t.agents.c.agent_id,
            t.shipments.c.status.in_(ACTIVE_STATUSES),
        )
        .scalar_subquery()
    )


def shifts_of(raw: Any) -> tuple[Shift, ...]:
    items = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(
        Shift(int(s["weekday"]), time.fromisoformat(s["start"]), time.fromisoformat(s["end"]))
        for s in items or ()
    )


# The agents serving a postal code, through the GIN index on service_zip_codes.
def serving_zip(tenant_id: str, postal_code: str) -> Any:
    return select(t.agents, _active_count().label("active_shipments")).where(
        t.agents.c.tenant_id == tenant_id,
        t.agents.c.service_zip_codes.contains([postal_code]),
    )


# The agents serving a postal code with their active shipments, through the GIN index on
# service_zip_codes (the same query as ``serving_zip``, whose EXPLAIN a test shows).
CANDIDATES = f"""
SELECT a.agent_id, a.active, a.capacity, a.shifts,
       (SELECT count(*) FROM shipments s
        WHERE s.agent_id = a.agent_id
          AND s.status IN ({", ".join(f"'{v}'" for v in ACTIVE_STATUSES)})) AS active_shipments
FROM agents a
WHERE a.tenant_id = $1 AND a.service_zip_codes @> ARRAY[$2::text]
"""


async def candidates(conn: AsyncConnection, tenant_id: str, postal_code: str) -> list[Candidate]:
    rows = await (await driver(conn)).fetch(CANDIDATES, tenant_id, postal_code)
    return [
        Candidate(
            agent_id=r["agent_id"],
            active=r["active"],
            capacity=r["capacity"],
            active_shipments=r["active_shipments"],
            shifts=shifts_of(r["shifts"]),
        )
        for r in rows
    ]


async def agents_with_load(conn: AsyncConnection, tenant_id: str) -> list[Any]:
    """Every agent of the tenant with its active shipments (the capacity view)."""
    rows = await conn.execute(
        select(t.agents, _active_count().label("active_shipments"))
        .where(t.agents.c.tenant_id == tenant_id)
        .order_by(t.agents.c.agent_id)
    )
    return list(rows)


async def active_by_postal_code(conn: AsyncConnection, tenant_id: str) -> dict[str, int]:
    """Shipments per postal code that need or hold an agent (active statuses, assigned or
    still waiting for one): the load a postal code puts on its agents."""
    rows = await conn.execute(
        select(t.shipments.c.postal_code, func.count())
        .where(
            t.shipments.c.tenant_id == tenant_id,
            t.shipments.c.status.in_(ACTIVE_STATUSES),
            t.shipments.c.postal_code.is_not(None),
        )
        .group_by(t.shipments.c.postal_code)
    )
    return {code: count for code, count in rows}


# --- tenant settings -----------------------------------------------------------------------


TENANT_SETTINGS = (
    "SELECT require_delivery_code, offer_wave_size, offer_ttl_s, sla_hours"
    " FROM tenant_settings WHERE tenant_id = $1"
)


@dataclass(frozen=True)
class TenantSettings:
    """A tenant's settings row (``Policy.of_tenant`` reads the offer and SLA ones)."""

    require_delivery_code: bool
    offer_wave_size: int | None
    offer_ttl_s: float | None
    sla_hours: float | None


async def tenant_settings(conn: AsyncConnection, tenant_id: str) -> TenantSettings | None:
    row = await (await driver(conn)).fetchrow(TENANT_SETTINGS, tenant_id)
    return TenantSettings(**dict(row)) if row is not None else None


async def require_delivery_code(conn: AsyncConnection, tenant_id: str) -> bool:
    row = await tenant_settings(conn, tenant_id)
    return bool(row is not None and row.require_delivery_code)


async def put_settings(
    conn: AsyncConnection, tenant_id: str, changes: dict[str, Any], now: datetime
) -> Any:
    """Set the given settings of the tenant (the others keep their values); the row after."""
    statement = pg_insert(t.tenant_settings).values(tenant_id=tenant_id, **changes, updated_at=now)
    return (
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[t.tenant_settings.c.tenant_id],
                set_={**changes, "updated_at": now},
            ).returning(*t.tenant_settings.c)
        )
    ).one()
