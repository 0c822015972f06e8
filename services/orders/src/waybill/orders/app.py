"""Bootstrap: the kit's parts (store, relay, consumer, health), the expiry runner and the
routes, wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from waybill.common.contracts import orders as contract
from waybill.common.lifecycle import Role
from waybill.common.registry import EventRegistry
from waybill.common.service import ServiceKit
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
    # Every event orders appends (its order and stock streams): the store types its loads
    # with it, and the AsyncAPI publish side is its public part.
    kit = ServiceKit(
        SERVICE,
        settings,
        MIGRATIONS,
        tables.events,
        tables.outbox,
        tables.inbox,
        registry=contract.register(EventRegistry()),
        pool_size=settings.orders_db_pool_size,
    )
    handlers = OrderHandlers(
        engine=kit.engine,
        store=kit.store,
        reservation_ttl=timedelta(seconds=settings.orders_reservation_ttl_s),
        idempotency_ttl=timedelta(seconds=settings.orders_idempotency_ttl_s),
    )
    expiry = reservation_expiry(
        handlers, kit.engine, interval_s=settings.orders_expiry_interval_s, service=SERVICE
    )
    kit.life.component(Role.WORKERS, "reservation-expiry", lambda: expiry)
    kit.consume(subscriptions(handlers))
    app = kit.app(routers=[router], error_status=ERROR_STATUS)
    app.state.handlers = handlers
    app.state.expiry = expiry
    return app
