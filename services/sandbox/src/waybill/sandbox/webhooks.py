"""Webhook events: created inside the transaction of what they announce, sent later.

An event row, its delivery rows and one "webhooks" job per delivery (waybill.common.queue) are
written with the state change (settlement, refund), so a crash can never lose the webhook of a
change that committed, and the queue's NOTIFY wakes the sender when it commits
(:mod:`waybill.sandbox.delivery`). The drop, duplicate and delay knobs are decided here, once
per event.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.queue import JobQueue, NewJob
from waybill.sandbox.faults import FaultKnobs
from waybill.sandbox.objects import unix
from waybill.sandbox.tables import webhook_deliveries, webhook_events

INTENT_SUCCEEDED = "payment_intent.succeeded"
INTENT_PAYMENT_FAILED = "payment_intent.payment_failed"
CHARGE_REFUNDED = "charge.refunded"


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


class WebhookEvents:
    """Writes events (and their pending deliveries) on the caller's connection."""

    def __init__(self, knobs: FaultKnobs, queue: JobQueue, *, max_age_s: float) -> None:
        self.knobs = knobs
        self.queue = queue
        self.max_age = timedelta(seconds=max_age_s)

    async def emit(
        self,
        conn: AsyncConnection,
        event_type: str,
        intents: Sequence[dict[str, Any]],
        now: datetime,
    ) -> int:
        """One event per intent; returns how many deliveries were scheduled."""
        if not intents:
            return 0
        delay = timedelta(seconds=self.knobs.current.webhook_delay_s)
        events: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for intent in intents:
            event_id = new_event_id()
            body = {
                "id": event_id,
                "type": event_type,
                "created": unix(now),
                "data": {"object": intent},
            }
            dropped = self.knobs.webhook_dropped()
            copies = 0 if dropped else self.knobs.webhook_copies()
            events.append(
                {
                    "id": event_id,
                    "type": event_type,
                    "payment_intent": intent["id"],
                    "body": json.dumps(body, separators=(",", ":")),
                    "created": now,
                    "dropped": dropped,
                    "copies": copies,
                }
            )
            deliveries += [
                {
                    "event_id": event_id,
                    "status": "pending",
                    "expires_at": now + delay + self.max_age,
                }
                for _ in range(copies)
            ]
        await conn.execute(insert(webhook_events), events)
        if not deliveries:
            return 0
        rows = (
            await conn.execute(
                insert(webhook_deliveries).returning(
                    webhook_deliveries.c.id,
                    webhook_deliveries.c.event_id,
                    sort_by_parameter_order=True,
                ),
                deliveries,
            )
        ).all()
        body_of = {e["id"]: e["body"] for e in events}
        await self.queue.enqueue_many(
            conn,
            [
                NewJob(
                    key=str(row.id),
                    payload={"delivery_id": row.id, "body": body_of[row.event_id]},
                    run_at=now + delay,
                    deadline=now + delay + self.max_age,
                )
                for row in rows
            ],
        )
        return len(rows)
