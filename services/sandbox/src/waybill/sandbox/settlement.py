"""Async settlement: ``processing`` intents turn ``succeeded`` when their time comes.

One ``UPDATE ... RETURNING`` per tick settles every due intent (bounded batch, skip-locked so
two sandboxes on one database never settle the same intent twice) and, in the same
transaction, writes the ``payment_intent.succeeded`` events of those that announce it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.sandbox.objects import intent_object
from waybill.sandbox.tables import intents
from waybill.sandbox.webhooks import INTENT_SUCCEEDED, WebhookEvents

log = structlog.get_logger(__name__)

BATCH = 500


class Settlement:
    def __init__(
        self,
        engine: AsyncEngine,
        events: WebhookEvents,
        on_events: Callable[[], None],
        *,
        tick_s: float,
    ) -> None:
        self.engine = engine
        self.events = events
        self.on_events = on_events
        self.tick_s = tick_s

    async def settle_due(self) -> int:
        """Settle the intents that are due now; returns how many."""
        now = datetime.now(UTC)
        due = (
            select(intents.c.id)
            .where(intents.c.status == "processing", intents.c.settle_at <= now)
            .order_by(intents.c.settle_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(intents)
                    .where(intents.c.id.in_(due.scalar_subquery()))
                    .values(status="succeeded", settle_at=None)
                    .returning(*intents.c)
                )
            ).all()
            announced = [intent_object(r) for r in rows if r.notify]
            scheduled = await self.events.emit(conn, INTENT_SUCCEEDED, announced, now)
        if scheduled:
            self.on_events()
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                settled = await self.settle_due()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("sandbox_settlement_failed", error=str(exc))
                settled = 0
            if settled < BATCH:
                await asyncio.sleep(self.tick_s)


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
