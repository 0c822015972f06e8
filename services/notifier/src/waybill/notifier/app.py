"""Bootstrap: the kit's parts (store, relay, consumer, health) and the webhook endpoints'
routes, wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from waybill.common.contracts import notifier as contract
from waybill.common.http.outbound import AllowList
from waybill.common.registry import EventRegistry
from waybill.common.service import ServiceKit
from waybill.notifier import tables
from waybill.notifier.api import ERROR_STATUS, router
from waybill.notifier.handlers import NotifierHandlers
from waybill.notifier.settings import NotifierSettings
from waybill.notifier.subscriptions import subscriptions

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
    handlers = NotifierHandlers(
        kit.engine,
        secret_grace=timedelta(seconds=settings.notifier_secret_grace_s),
        allow=AllowList.parse(settings.notifier_allowed_targets),
    )
    kit.consume(subscriptions(handlers))
    app = kit.app(routers=[router], error_status=ERROR_STATUS)
    app.state.handlers = handlers
    return app
