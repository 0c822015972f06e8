"""Bootstrap: settings, database, store, outbox relay, consumer, charger, sync and routes,
wired once."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from waybill.common import topics
from waybill.common.asyncapi import service_document
from waybill.common.auth import KeyStore
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.contracts import payments as contract
from waybill.common.db import create_engine, prepare_database
from waybill.common.eventstore import EventStore
from waybill.common.http.app import create_app
from waybill.common.http.health import broker_check, database_check
from waybill.common.lifecycle import Lifecycle, Role
from waybill.common.observability.logging import configure_logging
from waybill.common.outbox import OutboxRelay
from waybill.common.queue import JobQueue
from waybill.common.queue.admin import queues_router
from waybill.common.registry import EventRegistry
from waybill.common.settings import service_database
from waybill.payments import tables
from waybill.payments.after_commit import AfterCommitEngine
from waybill.payments.api import ERROR_STATUS, Services, admin_tenant, router
from waybill.payments.domain.payment import PaymentOrderClosed
from waybill.payments.gateway import build_gateway
from waybill.payments.handlers import PaymentHandlers
from waybill.payments.settings import PaymentsSettings
from waybill.payments.subscriptions import subscriptions
from waybill.payments.workers.charger import Charger, charges_spec
from waybill.payments.workers.sync import PaymentSync, payment_sync_job

SERVICE = "payments"
MIGRATIONS = Path(__file__).with_name("migrations")


def payment_registry() -> EventRegistry:
    """Every event a payment stream holds: the public contract plus our private event."""
    return contract.register(EventRegistry()).add(PaymentOrderClosed)


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
    appended = payment_registry()
    store = EventStore(
        tables.events,
        tables.outbox,
        source=f"/waybill/{SERVICE}",
        topic=topics.PAYMENTS_EVENTS,
        registry=appended,
    )
    life = Lifecycle(SERVICE, settings.run_roles)
    gateway = build_gateway(settings)
    charges = JobQueue(engine, charges_spec(gateway, lease_s=settings.payments_claim_lease_s))
    handlers = PaymentHandlers(
        engine=engine,
        store=store,
        charges=charges,
        provider=settings.payments_provider_name,
        # Without the workers role here, a new payment's job is left to the workers' processes
        # (woken by NOTIFY) instead of being claimed for a charger that does not run.
        charge_locally=life.runs(Role.WORKERS),
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
    subscribed = subscriptions(handlers, charger.submit)

    life.cleanup("engine", engine.dispose)
    life.step("database", lambda: prepare_database(settings, database, MIGRATIONS))
    life.cleanup("provider-client", gateway.aclose)
    life.component(Role.API, "key-store", lambda: key_store)
    life.task(Role.RELAY, "outbox-relay", relay.run, stop=relay.stop)
    life.component(Role.WORKERS, "charger", lambda: charger)
    life.component(Role.WORKERS, "payment-sync", lambda: sync)
    life.component(
        Role.CONSUMER,
        "consumer",
        lambda: EventConsumer.subscribing(
            subscribed,
            bootstrap_servers=settings.bootstrap_servers,
            # Same pool; its transactions tell the charger when a new payment has committed.
            engine=AfterCommitEngine(engine.sync_engine),
            inbox=tables.inbox,
            service=SERVICE,
        ),
    )

    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[router, queues_router(engine, [charges], admin_tenant)],
        error_status=ERROR_STATUS,
        # The provider is deliberately not a readiness check: during a provider outage
        # payments wait (and webhooks and reads still work); an unready service would not.
        health_checks={
            "database": database_check(engine),
            "broker": broker_check(settings.bootstrap_servers),
        },
        lifespan=life.lifespan,
        asyncapi=lambda: service_document(
            service=SERVICE, appended=appended.models(), subscriptions=subscribed
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
