"""Bootstrap: settings, database, provider, settlement, webhook delivery and routes, wired once.

:func:`build_app` is the FastAPI app; :func:`build_asgi` wraps it in the fault layer and is
what ``python -m waybill.sandbox`` serves (a reset needs the raw connection; fault_layer.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from waybill.common.db import create_engine, migrate
from waybill.common.http.app import create_app
from waybill.common.http.health import database_check
from waybill.common.infra.postgres import create_databases
from waybill.common.observability.logging import configure_logging
from waybill.sandbox import admin, api
from waybill.sandbox.delivery import WebhookDeliverer
from waybill.sandbox.errors import ProviderError
from waybill.sandbox.fault_layer import FaultLayer, RequestLog
from waybill.sandbox.faults import FaultKnobs
from waybill.sandbox.provider import PaymentProvider
from waybill.sandbox.settings import SandboxSettings
from waybill.sandbox.settlement import Settlement, stop_task
from waybill.sandbox.webhooks import WebhookEvents

SERVICE = "sandbox"
MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: SandboxSettings | None = None) -> FastAPI:
    settings = settings or SandboxSettings()
    configure_logging(SERVICE, settings)
    # One INFO line per webhook POST would be most of the log (and CPU) under load.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    database = settings.sandbox_database
    engine = create_engine(settings.database_dsn(database), pool_size=settings.sandbox_db_pool_size)
    knobs = FaultKnobs(settings)
    events = WebhookEvents(knobs, max_age_s=settings.sandbox_webhook_max_age_s)
    client = httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=settings.sandbox_webhook_concurrency,
            max_keepalive_connections=settings.sandbox_webhook_concurrency,
        )
    )
    deliverer = WebhookDeliverer(
        engine,
        client,
        url=settings.sandbox_webhook_url,
        secret=settings.provider_webhook_secret,
        concurrency=settings.sandbox_webhook_concurrency,
        timeout_s=settings.sandbox_webhook_timeout_s,
        retry_base_s=settings.sandbox_webhook_retry_base_s,
        tick_s=settings.sandbox_tick_s,
    )
    provider = PaymentProvider(
        engine, events, deliverer.wake, settle_after_s=settings.sandbox_async_settle_s
    )
    settlement = Settlement(engine, events, deliverer.wake, tick_s=settings.sandbox_tick_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(create_databases, settings.server_url, [database])
        await asyncio.to_thread(migrate, settings.database_dsn(database), MIGRATIONS)
        settle_task = asyncio.create_task(settlement.run(), name="sandbox-settlement")
        deliver_task = asyncio.create_task(deliverer.run(), name="sandbox-webhooks")
        try:
            yield
        finally:
            await stop_task(settle_task)
            await deliverer.stop(deliver_task)
            await client.aclose()
            await engine.dispose()

    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[api.router, admin.router],
        health_checks={"database": database_check(engine)},
        lifespan=lifespan,
        key_routes=False,  # the outside world: no Waybill API keys
    )
    app.add_exception_handler(ProviderError, api.provider_error_handler)
    app.state.engine = engine
    app.state.knobs = knobs
    app.state.requests = RequestLog()
    app.state.provider = provider
    app.state.settlement = settlement
    app.state.deliverer = deliverer
    return app


def build_asgi(settings: SandboxSettings | None = None) -> FaultLayer:
    """The served application: the FastAPI app behind the provider-API fault layer."""
    settings = settings or SandboxSettings()
    app = build_app(settings)
    return FaultLayer(app, app.state.knobs, app.state.requests, hang_s=settings.sandbox_hang_s)
