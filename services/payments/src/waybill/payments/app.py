"""Bootstrap: settings, database, store, outbox relay, consumer, charger, sync and routes,
wired once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from waybill.common import topics
from waybill.common.asyncapi import asyncapi_document
from waybill.common.auth import KeyStore
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.contracts import payments as contract
from waybill.common.db import create_engine, migrate
from waybill.common.eventstore import EventStore
from waybill.common.http.app import create_app
from waybill.common.http.health import broker_check, database_check
from waybill.common.infra.postgres import create_databases
from waybill.common.observability.logging import configure_logging
from waybill.common.outbox import OutboxRelay
from waybill.common.queue import JobQueue
from waybill.common.queue.admin import queues_router
from waybill.common.registry import EventRegistry
from waybill.common.settings import service_database
from waybill.payments import projections
from waybill.payments.api import Services, admin_tenant, router
from waybill.payments.charger import Charger, charges_spec
from waybill.payments.consumers import (
    CONSUMED,
    GROUP,
    AfterCommitEngine,
    consumed_registry,
    order_event_handler,
)
from waybill.payments.domain.payment import PaymentOrderClosed
from waybill.payments.gateway import build_gateway
from waybill.payments.handlers import PaymentHandlers
from waybill.payments.settings import PaymentsSettings
from waybill.payments.workers.sync import PaymentSync, payment_sync_job

SERVICE = "payments"
MIGRATIONS = Path(__file__).with_name("migrations")


def payment_registry() -> EventRegistry:
    """Every event a payment stream holds: the public contract plus our internal event."""
    registry = contract.register(EventRegistry())
    registry.register(PaymentOrderClosed.event_type, PaymentOrderClosed)
    return registry


def build_app(settings: PaymentsSettings | None = None) -> FastAPI:
    settings = settings or PaymentsSettings()
    configure_logging(SERVICE, settings)
    # httpx logs every provider call at INFO: a second line per charge beside the audit line
    # (payment_event_recorded), and its CPU, under load. Failures are logged by the gateway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    database = service_database(SERVICE)
    engine = create_engine(
        settings.database_dsn(database), pool_size=settings.payments_db_pool_size
    )
    store = EventStore(
        projections.events,
        projections.outbox,
        source=f"/waybill/{SERVICE}",
        topic=topics.PAYMENTS_EVENTS,
    )
    gateway = build_gateway(settings)
    charges = JobQueue(engine, charges_spec(gateway, lease_s=settings.payments_claim_lease_s))
    handlers = PaymentHandlers(
        engine=engine,
        store=store,
        registry=payment_registry(),
        charges=charges,
        provider=settings.payments_provider_name,
    )
    charger = Charger(
        handlers,
        gateway,
        dsn=settings.asyncpg_dsn(database),
        service=SERVICE,
        concurrency=settings.payments_charger_concurrency,
        poll_s=settings.payments_sweep_interval_s,
    )
    sync = payment_sync_job(
        PaymentSync(
            handlers,
            gateway,
            threshold_s=settings.payments_sync_threshold_s,
            on_provider_work=charger.submit,
        ),
        interval_s=settings.payments_sync_interval_s,
        service=SERVICE,
    )
    key_store = KeyStore(settings)
    relay = OutboxRelay(settings.asyncpg_dsn(database), settings.bootstrap_servers, service=SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(create_databases, settings.server_url, [database])
        await asyncio.to_thread(migrate, settings.database_dsn(database), MIGRATIONS)
        await key_store.start()
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        charger.start()
        sync.start()
        # Built here: its Kafka clients need the running loop.
        consumer = EventConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=GROUP,
            topics=[topics.ORDERS_EVENTS],
            # Same pool; its transactions tell the charger when a new payment has committed.
            engine=AfterCommitEngine(engine.sync_engine),
            inbox=projections.inbox,
            registry=consumed_registry(),
            handler=order_event_handler(handlers, charger.submit),
            service=SERVICE,
        )
        await consumer.start()
        try:
            yield
        finally:
            await consumer.stop()
            await sync.stop()
            await charger.stop()
            await relay.stop()
            relay_task.cancel()
            await asyncio.gather(relay_task, return_exceptions=True)
            await gateway.aclose()
            await key_store.close()
            await engine.dispose()

    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[router, queues_router(engine, [charges], admin_tenant)],
        # The provider is deliberately not a readiness check: during a provider outage
        # payments wait (and webhooks and reads still work); an unready service would not.
        health_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.bootstrap_servers),
        },
        lifespan=lifespan,
        asyncapi=lambda: asyncapi_document(
            service=SERVICE,
            publishes={topics.PAYMENTS_EVENTS: list(contract.PAYMENT_EVENTS)},
            consumes={topics.ORDERS_EVENTS: list(CONSUMED)},
        ),
    )
    app.state.services = Services(
        handlers=handlers,
        gateway=gateway,
        charger=charger,
        sync=sync,
        webhook_secret=settings.provider_webhook_secret,
        webhook_tolerance_s=settings.payments_webhook_tolerance_s,
    )
    app.state.key_store = key_store
    return app
