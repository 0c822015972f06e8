"""Bootstrap: the kit's parts (store, relay, consumer, health) and the webhook endpoints'
routes, wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from waybill.common.contracts import notifier as contract
from waybill.common.http.outbound import AllowList, checked_client
from waybill.common.lifecycle import Role
from waybill.common.queue import QueueWorker
from waybill.common.registry import EventRegistry
from waybill.common.service import ServiceKit
from waybill.notifier import tables
from waybill.notifier.api import ERROR_STATUS, router
from waybill.notifier.domain.schedule import Schedule, parse_schedule
from waybill.notifier.handlers import NotifierHandlers
from waybill.notifier.settings import NotifierSettings
from waybill.notifier.subscriptions import subscriptions
from waybill.notifier.workers.deliveries import DeliverySender, deliveries_queue

SERVICE = "notifier"
MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    kit = ServiceKit(
        SERVICE,
        settings,
        MIGRATIONS,
        tables.events,
        tables.outbox,
        tables.inbox,
        registry=contract.register(EventRegistry()),
        pool_size=settings.notifier_db_pool_size,
    )
    allow = AllowList.parse(settings.notifier_allowed_targets)
    schedule = Schedule(parse_schedule(settings.notifier_retry_schedule_s))
    deliveries = deliveries_queue(
        kit.engine, schedule, timeout_s=settings.notifier_request_timeout_s
    )
    handlers = NotifierHandlers(
        kit.engine,
        secret_grace=timedelta(seconds=settings.notifier_secret_grace_s),
        allow=allow,
        delivery_queue=deliveries,
    )
    client = checked_client(
        allow,
        timeout=httpx.Timeout(
            settings.notifier_request_timeout_s, connect=settings.notifier_connect_timeout_s
        ),
    )
    sender = DeliverySender(
        deliveries,
        kit.store,
        client,
        schedule,
        disable_after=timedelta(seconds=settings.notifier_disable_after_s),
    )
    worker = QueueWorker(
        deliveries,
        sender.deliver,
        dsn=settings.asyncpg_dsn(kit.database),
        service=SERVICE,
        concurrency=settings.notifier_delivery_concurrency,
        # The worker also sleeps until the next job is due; this bounds how late a retry can
        # be if that wake-up is missed (seen once: a 1 s retry 5 s late; see the closing note).
        poll_s=1.0,
    )
    kit.life.cleanup("webhook-client", client.aclose)
    kit.life.component(Role.WORKERS, "deliveries", lambda: worker)
    kit.consume(subscriptions(handlers))
    app = kit.app(routers=[router], error_status=ERROR_STATUS)
    app.state.handlers = handlers
    app.state.deliveries = worker
    return app
