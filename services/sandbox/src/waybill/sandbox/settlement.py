"""Async settlement: ``processing`` intents turn ``succeeded`` when their time comes.

One ``UPDATE ... RETURNING`` settles every due intent (bounded batch, skip-locked so two
sandboxes on one database never settle the same intent twice) and, in the same transaction,
writes the ``payment_intent.succeeded`` events of those that announce it. Between rounds the
loop sleeps until the next intent is due, or until the provider says it created one
(``wake``), or at most ``poll_s`` (another sandbox on the same database may have created one):
an idle sandbox sleeps instead of polling every few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.failures.classify import database_unreachable
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
        poll_s: float,
    ) -> None:
        self.engine = engine
        self.events = events
        self.on_events = on_events
        self.poll_s = poll_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """An intent that settles later was committed: recompute when to look next."""
        self._wake.set()

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

    async def next_due_in_s(self) -> float:
        """Seconds until the next processing intent is due (``poll_s`` when there is none)."""
        async with self.engine.connect() as conn:
            due = await conn.scalar(
                select(func.min(intents.c.settle_at)).where(intents.c.status == "processing")
            )
        if due is None:
            return self.poll_s
        return min(max((due - datetime.now(UTC)).total_seconds(), 0.0), self.poll_s)

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake from now on is not lost
            try:
                if await self.settle_due() >= BATCH:
                    continue
                wait_s = await self.next_due_in_s()
            except Exception as exc:  # the loop outlives a failed turn; it looks again later
                if isinstance(exc, SQLAlchemyError | OSError) or database_unreachable(exc):
                    log.warning("sandbox_settlement_failed", error=repr(exc))
                else:
                    log.exception("sandbox_settlement_failed")
                wait_s = self.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
