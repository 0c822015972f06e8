"""Bootstrap: the kit's parts (store, relay, consumer, health), the charger, payment sync and
the routes, wired once."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from waybill.common.contracts import payments as contract
from waybill.common.lifecycle import Role
from waybill.common.queue import JobQueue
from waybill.common.queue.admin import queues_router
from waybill.common.registry import EventRegistry
from waybill.common.service import ServiceKit
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
    kit = ServiceKit(
        SERVICE,
        settings,
        MIGRATIONS,
        tables.events,
        tables.outbox,
        tables.inbox,
        registry=payment_registry(),
        pool_size=settings.payments_db_pool_size,
    )
    # httpx logs every provider call at INFO: a second line per charge beside the audit line
    # (payment_event_recorded), and its CPU, under load. Failures are logged by the gateway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    engine, life = kit.engine, kit.life
    gateway = build_gateway(settings)
    charges = JobQueue(engine, charges_spec(gateway, lease_s=settings.payments_claim_lease_s))
    handlers = PaymentHandlers(
        engine=engine,
        store=kit.store,
        charges=charges,
        provider=settings.payments_provider_name,
        # Without the workers role here, a new payment's job is left to the workers' processes
        # (woken by NOTIFY) instead of being claimed for a charger that does not run.
        charge_locally=life.runs(Role.WORKERS),
    )
    charger = Charger(
        handlers,
        gateway,
        dsn=settings.asyncpg_dsn(kit.database),
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

    life.cleanup("provider-client", gateway.aclose)
    life.component(Role.WORKERS, "charger", lambda: charger)
    life.component(Role.WORKERS, "payment-sync", lambda: sync)
    # Same pool; the consumer's transactions tell the charger when a new payment has committed.
    kit.consume(
        subscriptions(handlers, charger.submit), engine=AfterCommitEngine(engine.sync_engine)
    )
    # The provider is deliberately not a readiness check: during a provider outage payments
    # wait (and webhooks and reads still work); an unready service would not.
    app = kit.app(
        routers=[router, queues_router(engine, [charges], admin_tenant)],
        error_status=ERROR_STATUS,
    )
    app.state.services = Services(
        handlers=handlers,
        gateway=gateway,
        charger=charger,
        sync=sync,
        webhook_secret=settings.provider_webhook_secret,
        webhook_tolerance_s=settings.payments_webhook_tolerance_s,
    )
    return app
