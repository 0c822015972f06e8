"""The monitor's operations side, wired onto the kit: the bulk jobs' queue and its worker,
dead-letter retention, the lag reader, and the router of its own ``GET /admin/queues``.

Kept out of ``app`` so that the bootstrap stays one call (``wire``) for this part.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from waybill.common.lifecycle import Role
from waybill.common.queue import JobQueue, QueueWorker
from waybill.common.queue.admin import queues_router
from waybill.common.service import ServiceKit
from waybill.monitor.bulk import BulkJobs, bulk_queue
from waybill.monitor.dead_letters import DeadLetters
from waybill.monitor.lag import LagReader
from waybill.monitor.retention import retention_job
from waybill.monitor.settings import MonitorSettings


@dataclass
class Operations:
    queue: JobQueue
    bulk: BulkJobs
    lag: LagReader
    routers: list[APIRouter]


def wire(kit: ServiceKit, settings: MonitorSettings, letters: DeadLetters) -> Operations:
    from waybill.monitor.api import admin_tenant  # the API's own admin dependency

    queue = bulk_queue(kit.engine)
    bulk = BulkJobs(kit.engine, letters, queue)
    worker = QueueWorker(
        queue,
        bulk.work,
        dsn=settings.asyncpg_dsn(kit.database),
        service=kit.name,
        concurrency=1,  # one bulk job at a time: a critical one is claimed next
        poll_s=settings.monitor_bulk_poll_s,
    )
    kit.life.component(Role.WORKERS, "bulk-jobs", lambda: worker)
    retention = retention_job(
        kit.engine,
        retention_s=settings.monitor_dlq_retention_s,
        interval_s=settings.monitor_dlq_retention_interval_s,
        service=kit.name,
    )
    kit.life.component(Role.WORKERS, "dead-letter-retention", lambda: retention)
    lag = LagReader(settings.bootstrap_servers, timeout_s=settings.monitor_scrape_timeout_s)
    kit.life.component(Role.API, "lag-reader", lambda: lag)
    return Operations(
        queue=queue,
        bulk=bulk,
        lag=lag,
        routers=[queues_router(kit.engine, [queue], admin_tenant)],
    )
