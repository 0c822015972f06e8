"""Bootstrap: settings, database, store, outbox relay, expiry runner and routes, wired once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from waybill.common import topics
from waybill.common.asyncapi import asyncapi_document
from waybill.common.auth import KeyStore
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.contracts import orders as contract
from waybill.common.contracts import payments as payments_contract
from waybill.common.db import create_engine, migrate
from waybill.common.eventstore import EventStore
from waybill.common.http.app import create_app
from waybill.common.http.health import broker_check, database_check
from waybill.common.infra.postgres import create_databases
from waybill.common.observability.logging import configure_logging
from waybill.common.outbox import OutboxRelay
from waybill.common.registry import EventRegistry
from waybill.common.settings import service_database
from waybill.orders import projections
from waybill.orders.api import router
from waybill.orders.consumers import CONSUMER_GROUP, payment_outcome_handler
from waybill.orders.expiry import ExpiryRunner
from waybill.orders.handlers import OrderHandlers
from waybill.orders.settings import OrdersSettings

SERVICE = "orders"
MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    configure_logging(SERVICE, settings)
    database = service_database(SERVICE)
    engine = create_engine(settings.database_dsn(database), pool_size=settings.orders_db_pool_size)
    store = EventStore(
        projections.events,
        projections.outbox,
        source=f"/waybill/{SERVICE}",
        topic=topics.ORDERS_EVENTS,
    )
    handlers = OrderHandlers(
        engine=engine,
        store=store,
        reservation_ttl=timedelta(seconds=settings.orders_reservation_ttl_s),
        idempotency_ttl=timedelta(seconds=settings.orders_idempotency_ttl_s),
    )
    key_store = KeyStore(settings)
    relay = OutboxRelay(settings.asyncpg_dsn(database), settings.bootstrap_servers, service=SERVICE)
    expiry = ExpiryRunner(handlers, engine, settings.orders_expiry_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(create_databases, settings.server_url, [database])
        await asyncio.to_thread(migrate, settings.database_dsn(database), MIGRATIONS)
        await key_store.start()
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        expiry_task = asyncio.create_task(expiry.run(), name="reservation-expiry")
        # Built here, not above: its Kafka client needs the running event loop.
        consumer = EventConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=CONSUMER_GROUP,
            topics=[topics.PAYMENTS_EVENTS],
            engine=engine,
            inbox=projections.inbox,
            registry=payments_contract.register(EventRegistry()),
            handler=payment_outcome_handler(handlers),
            service=SERVICE,
        )
        await consumer.start()
        try:
            yield
        finally:
            await consumer.stop()
            await ExpiryRunner.stop(expiry_task)
            await relay.stop()
            relay_task.cancel()
            await asyncio.gather(relay_task, return_exceptions=True)
            await key_store.close()
            await engine.dispose()

    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[router],
        health_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.bootstrap_servers),
        },
        lifespan=lifespan,
        asyncapi=lambda: asyncapi_document(
            service=SERVICE,
            publishes={topics.ORDERS_EVENTS: [*contract.ORDER_EVENTS, *contract.INVENTORY_EVENTS]},
            consumes={
                topics.PAYMENTS_EVENTS: [
                    payments_contract.PaymentCaptured,
                    payments_contract.PaymentFailed,
                ]
            },
        ),
    )
    app.state.handlers = handlers
    app.state.key_store = key_store
    app.state.expiry = expiry
    return app
