"""``waybill monitor rebuild``: every read model again, from the monitor's copy of the events.

In one transaction: the read models are emptied and every consumed event is projected again in
the order it was consumed, so a reader sees the old figures or the new ones, never a half-built
state; the consumer's transactions wait on the table locks meanwhile. Dead letters are not
read models (their status comes from actions and retries) and are left as they are.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.registry import EventRegistry
from waybill.monitor import repository
from waybill.monitor.ingest import Ingest
from waybill.monitor.projections import StreamEvent, project


async def rebuild_read_models(engine: AsyncEngine, registry: EventRegistry) -> int:
    """Rebuild; returns how many events were replayed."""
    ingest = Ingest(registry, operator_tenant="")
    replayed = 0
    async with engine.begin() as conn:
        await repository.truncate_read_models(conn)
        async for row in repository.consumed_in_order(conn):
            replayed += 1
            payload = ingest.parse(row.type, row.schema_version, row.data)
            if payload is not None:
                stream = StreamEvent(row.tenant_id, row.subject, row.sequence, row.time)
                await project(conn, stream, payload)
    return replayed


async def rebuild(settings: object | None = None) -> int:
    """The CLI's entry: rebuild the monitor's database named by the settings."""
    from waybill.common.db import create_engine
    from waybill.common.settings import service_database
    from waybill.monitor.app import SERVICE, registry
    from waybill.monitor.settings import MonitorSettings

    chosen = settings if isinstance(settings, MonitorSettings) else MonitorSettings()
    engine = create_engine(chosen.database_dsn(service_database(SERVICE)), pool_size=1)
    try:
        return await rebuild_read_models(engine, registry())
    finally:
        await engine.dispose()
