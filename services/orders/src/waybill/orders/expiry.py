"""Reservation expiry: unpaid orders past their deadline -> ``order.expired`` + stock released.

One runner across replicas: each sweep first takes a PostgreSQL advisory lock and skips the
sweep if another replica holds it. Expiring is idempotent anyway (the decider ignores an order
that is no longer pending), so the lock saves work, not correctness.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.orders.handlers import OrderHandlers

EXPIRY_LOCK_KEY = 0x0_57A7_E0E1  # any constant unique among this database's advisory locks
log = structlog.get_logger(__name__)


class ExpiryRunner:
    def __init__(self, handlers: OrderHandlers, engine: AsyncEngine, interval_s: float) -> None:
        self.handlers = handlers
        self.engine = engine
        self.interval_s = interval_s

    async def sweep(self) -> int | None:
        """Expire what is due; None when another replica holds the runner lock."""
        async with self.engine.connect() as conn:
            held = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": EXPIRY_LOCK_KEY}
            )
            await conn.commit()
            if not held:
                return None
            try:
                expired = await self.handlers.expire_due_orders()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": EXPIRY_LOCK_KEY})
                await conn.commit()
        if expired:
            log.info("orders_expiry_swept", expired=expired)
        return expired

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except (OperationalError, DBAPIError, OSError) as exc:
                log.warning("orders_expiry_sweep_failed", error=str(exc))
            await asyncio.sleep(self.interval_s)

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
