"""SLA breaches: each shipment not delivered by ``sla_due_at`` is reported once
(``shipment.sla_breached``); a late delivery reports its own breach with the delivery.

A leader-locked periodic job (``waybill.common.jobs``) every ``shipping_sla_interval_s``; the
scan reads the partial index of shipments not reported yet, and the decider makes a second
report impossible (``sla_breached`` is in the stream), so the lock saves work, not correctness.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.jobs import PeriodicJob
from waybill.shipping import repository as db
from waybill.shipping.handlers import ShippingHandlers

log = structlog.get_logger(__name__)


def sla_watch(
    handlers: ShippingHandlers, engine: AsyncEngine, *, interval_s: float, service: str
) -> PeriodicJob[[], int]:
    async def report_breaches(limit: int = 200) -> int:
        async with engine.connect() as conn:
            due = await db.sla_due(conn, handlers.clock(), limit)
        reported = 0
        for shipment_id, tenant_id in due:
            reported += await handlers.report_sla_breach(shipment_id, tenant_id)
        return reported

    return PeriodicJob(
        engine, report_breaches, name="shipment-sla", interval_s=interval_s, service=service
    )
