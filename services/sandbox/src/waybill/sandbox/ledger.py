"""Reading what happened: the ledger of charges and refunds, and the webhook history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.sandbox.objects import unix
from waybill.sandbox.tables import (
    intents,
    refunds,
    webhook_attempts,
    webhook_deliveries,
    webhook_events,
)


async def read_ledger(
    engine: AsyncEngine, metadata_key: str | None = None, metadata_value: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Charges (intents created succeeded/processing) and refunds, oldest first."""
    charges_q = select(intents).where(intents.c.charged).order_by(intents.c.created)
    refunds_q = (
        select(refunds)
        .join(intents, intents.c.id == refunds.c.payment_intent)
        .order_by(refunds.c.created)
    )
    if metadata_key is not None:
        match = intents.c.metadata.contains({metadata_key: metadata_value or ""})
        charges_q, refunds_q = charges_q.where(match), refunds_q.where(match)
    async with engine.connect() as conn:
        charges = (await conn.execute(charges_q)).all()
        refund_rows = (await conn.execute(refunds_q)).all()
    return {
        "charges": [
            {
                "payment_intent": c.id,
                "amount": c.amount,
                "currency": c.currency,
                "payment_method": c.payment_method,
                "idempotency_key": c.idempotency_key,
                "metadata": c.metadata,
                "created": unix(c.created),
            }
            for c in charges
        ],
        "refunds": [
            {
                "refund": r.id,
                "payment_intent": r.payment_intent,
                "amount": r.amount,
                "idempotency_key": r.idempotency_key,
                "created": unix(r.created),
            }
            for r in refund_rows
        ],
    }


async def webhook_history(
    engine: AsyncEngine, payment_intent: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Webhook events (newest last), each with its deliveries and their attempts."""
    events_q = select(webhook_events).order_by(webhook_events.c.created.desc()).limit(limit)
    if payment_intent is not None:
        events_q = events_q.where(webhook_events.c.payment_intent == payment_intent)
    async with engine.connect() as conn:
        events = list(reversed((await conn.execute(events_q)).all()))
        event_ids = [e.id for e in events]
        deliveries = (
            await conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.event_id.in_(event_ids))
                .order_by(webhook_deliveries.c.id)
            )
        ).all()
        attempts = (
            await conn.execute(
                select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id.in_([d.id for d in deliveries]))
                .order_by(webhook_attempts.c.id)
            )
        ).all()
    attempts_of: dict[int, list[dict[str, Any]]] = {}
    for a in attempts:
        attempts_of.setdefault(a.delivery_id, []).append(
            {
                "at": a.at.timestamp(),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
        )
    deliveries_of: dict[str, list[dict[str, Any]]] = {}
    for d in deliveries:
        deliveries_of.setdefault(d.event_id, []).append(
            {"id": d.id, "status": d.status, "attempts": attempts_of.get(d.id, [])}
        )
    return [
        {
            "id": e.id,
            "type": e.type,
            "payment_intent": e.payment_intent,
            "created": unix(e.created),
            "dropped": e.dropped,
            "copies": e.copies,
            "deliveries": deliveries_of.get(e.id, []),
        }
        for e in events
    ]
