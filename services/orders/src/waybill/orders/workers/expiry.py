"""Reservation expiry: unpaid orders past their deadline -> ``order.expired`` + stock released.

A periodic job of the kit (``waybill.common.jobs``): one replica per database runs it every
``orders_expiry_interval_s``; ``run_now`` (tests, operators) does not wait for the leader.
Expiring is idempotent (the decider ignores an order that is no longer pending), so the lock
saves work, not correctness.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.jobs import PeriodicJob
from waybill.orders.handlers import OrderHandlers

log = structlog.get_logger(__name__)


def reservation_expiry(
    handlers: OrderHandlers, engine: AsyncEngine, *, interval_s: float, service: str
) -> PeriodicJob[[], int]:
    async def expire_due() -> int:
        expired = await handlers.expire_due_orders()
        if expired:
            log.info("orders_expiry_swept", expired=expired)
        return expired

    return PeriodicJob(
        engine, expire_due, name="reservation-expiry", interval_s=interval_s, service=service
    )
