"""Bootstrap: the kit's parts (store, relay, consumer, health) and the webhook endpoints'
routes, wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from waybill.common.breaker import CircuitBreakers
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
    breakers = CircuitBreakers(
        service=SERVICE,
        failure_threshold=settings.notifier_breaker_failures,
        reset_s=settings.notifier_breaker_reset_s,
    )
    sender = DeliverySender(
        deliveries,
        kit.store,
        client,
        schedule,
        breakers,
        disable_after=timedelta(seconds=settings.notifier_disable_after_s),
        endpoint_concurrency=settings.notifier_endpoint_concurrency,
        max_response_bytes=settings.notifier_max_response_bytes,
        breaker_reset_s=settings.notifier_breaker_reset_s,
    )
    worker = QueueWorker(
        deliveries,
        sender.deliver,
        dsn=settings.asyncpg_dsn(kit.database),
        service=SERVICE,
        concurrency=settings.notifier_delivery_concurrency,
    )
    kit.life.cleanup("webhook-client", client.aclose)
    kit.life.component(Role.WORKERS, "deliveries", lambda: worker)
    kit.consume(subscriptions(handlers))
    app = kit.app(routers=[router], error_status=ERROR_STATUS)
    app.state.handlers = handlers
    app.state.deliveries = worker
    return app
