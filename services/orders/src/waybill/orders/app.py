"""Bootstrap: settings, database, store, outbox relay, expiry runner and routes, wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from waybill.common import topics
from waybill.common.asyncapi import service_document
from waybill.common.auth import KeyStore
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.contracts import orders as contract
from waybill.common.db import create_engine, prepare_database
from waybill.common.eventstore import EventStore
from waybill.common.http.app import create_app
from waybill.common.http.health import broker_check, database_check
from waybill.common.lifecycle import Lifecycle, Role
from waybill.common.observability.logging import configure_logging
from waybill.common.outbox import OutboxRelay
from waybill.common.registry import EventRegistry
from waybill.common.settings import service_database
from waybill.orders import tables
from waybill.orders.api import ERROR_STATUS, router
from waybill.orders.handlers import OrderHandlers
from waybill.orders.settings import OrdersSettings
from waybill.orders.subscriptions import subscriptions
from waybill.orders.workers.expiry import reservation_expiry

SERVICE = "orders"
MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    configure_logging(SERVICE, settings)
    database = service_database(SERVICE)
    engine = create_engine(settings.database_dsn(database), pool_size=settings.orders_db_pool_size)
    # Every event orders appends (its order and stock streams): the store types its loads
    # with it, and the AsyncAPI publish side is its public part.
    appended = contract.register(EventRegistry())
    store = EventStore(
        tables.events,
        tables.outbox,
        source=f"/waybill/{SERVICE}",
        topic=topics.ORDERS_EVENTS,
        registry=appended,
    )
    handlers = OrderHandlers(
        engine=engine,
        store=store,
        reservation_ttl=timedelta(seconds=settings.orders_reservation_ttl_s),
        idempotency_ttl=timedelta(seconds=settings.orders_idempotency_ttl_s),
    )
    key_store = KeyStore(settings)
    relay = OutboxRelay(settings.asyncpg_dsn(database), settings.bootstrap_servers, service=SERVICE)
    expiry = reservation_expiry(
        handlers, engine, interval_s=settings.orders_expiry_interval_s, service=SERVICE
    )
    subscribed = subscriptions(handlers)

    life = Lifecycle(SERVICE, settings.run_roles)
    life.cleanup("engine", engine.dispose)
    life.step("database", lambda: prepare_database(settings, database, MIGRATIONS))
    life.component(Role.API, "key-store", lambda: key_store)
    life.task(Role.RELAY, "outbox-relay", relay.run, stop=relay.stop)
    life.component(Role.WORKERS, "reservation-expiry", lambda: expiry)
    life.component(
        Role.CONSUMER,
        "consumer",
        lambda: EventConsumer.subscribing(
            subscribed,
            bootstrap_servers=settings.bootstrap_servers,
            engine=engine,
            inbox=tables.inbox,
            service=SERVICE,
        ),
    )

    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[router],
        error_status=ERROR_STATUS,
        health_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.bootstrap_servers),
        },
        lifespan=life.lifespan,
        asyncapi=lambda: service_document(
            service=SERVICE, appended=appended.models(), subscriptions=subscribed
        ),
    )
    app.state.handlers = handlers
    app.state.key_store = key_store
    app.state.expiry = expiry
    return app
