"""The dispatcher: offers that ran out go to the next wave; shipments waiting for an agent are
offered once one is eligible.

A periodic job of the kit (``waybill.common.jobs``, leader-locked: one replica per database
dispatches) every ``shipping_dispatch_interval_s``, woken early in this process when an agent
became eligible here. It reads only the shipments whose ``dispatch_at`` is due (a partial
index), and takes each with ``SKIP LOCKED``, so an agent's command on a shipment is never
queued behind it. Open-source dispatchers re-ping every driver on a timer and record nothing;
here every offer, decline and expiry is an event in the shipment's stream.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.jobs import PeriodicJob
from waybill.shipping.handlers import ShippingHandlers

log = structlog.get_logger(__name__)


def dispatcher(
    handlers: ShippingHandlers, engine: AsyncEngine, *, interval_s: float, service: str
) -> PeriodicJob[[], int]:
    async def dispatch_due() -> int:
        seen = await handlers.dispatch_due()
        if seen:
            log.debug("shipping_dispatch_swept", shipments=seen)
        return seen

    return PeriodicJob(
        engine, dispatch_due, name="shipment-dispatch", interval_s=interval_s, service=service
    )
