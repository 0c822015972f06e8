"""Bootstrap: settings, database, provider, settlement, webhook delivery, the SMS provider, the
SMTP server and routes, wired once.

:func:`build_app` is the FastAPI app; :func:`build_asgi` wraps it in the fault layer and is
what ``python -m waybill.sandbox`` serves (a reset needs the raw connection; fault_layer.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from fastapi import FastAPI

from waybill.common.db import create_engine, prepare_database
from waybill.common.http.app import create_app
from waybill.common.http.health import database_check
from waybill.common.lifecycle import Lifecycle, Role
from waybill.common.observability.logging import configure_logging
from waybill.common.queue import QueueWorker
from waybill.common.queue.admin import queues_router
from waybill.sandbox import admin, api
from waybill.sandbox.delivery import WebhookSender, webhook_queue
from waybill.sandbox.errors import ProviderError
from waybill.sandbox.fault_layer import FaultLayer, RequestLog
from waybill.sandbox.faults import FaultKnobs
from waybill.sandbox.mailbox import Mailbox
from waybill.sandbox.provider import PaymentProvider
from waybill.sandbox.settings import SandboxSettings
from waybill.sandbox.settlement import Settlement
from waybill.sandbox.sms import SmsProvider
from waybill.sandbox.smtp import MailboxHandler, SmtpServer
from waybill.sandbox.webhooks import WebhookEvents

SERVICE = "sandbox"
MIGRATIONS = Path(__file__).with_name("migrations")


async def no_tenant() -> None:
    """The sandbox has no tenants (nor keys, like its other admin routes): all jobs show."""
    return None


def build_app(settings: SandboxSettings | None = None) -> FastAPI:
    settings = settings or SandboxSettings()
    configure_logging(SERVICE, settings)
    # One INFO line per webhook POST would be most of the log (and CPU) under load.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # aiosmtpd logs every connection and hang-up at INFO (its "mail.log" logger); ours say more.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    database = settings.sandbox_database
    engine = create_engine(settings.database_dsn(database), pool_size=settings.sandbox_db_pool_size)
    knobs = FaultKnobs(settings)
    queue = webhook_queue(
        engine,
        timeout_s=settings.sandbox_webhook_timeout_s,
        retry_base_s=settings.sandbox_webhook_retry_base_s,
    )
    events = WebhookEvents(knobs, queue, max_age_s=settings.sandbox_webhook_max_age_s)
    client = httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=settings.sandbox_webhook_concurrency,
            max_keepalive_connections=settings.sandbox_webhook_concurrency,
        )
    )
    sender = WebhookSender(
        queue,
        client,
        url=settings.sandbox_webhook_url,
        secret=settings.provider_webhook_secret,
        timeout_s=settings.sandbox_webhook_timeout_s,
    )
    deliverer = QueueWorker(
        queue,
        sender.deliver,
        dsn=settings.asyncpg_dsn(database),
        service=SERVICE,
        concurrency=settings.sandbox_webhook_concurrency,
        poll_s=settings.sandbox_poll_s,
    )
    # Deliveries are enqueued with a NOTIFY; waking the local worker too saves its round trip.
    settlement = Settlement(engine, events, deliverer.wakeup.wake, poll_s=settings.sandbox_poll_s)
    provider = PaymentProvider(
        engine,
        events,
        deliverer.wakeup.wake,
        settle_after_s=settings.sandbox_async_settle_s,
        on_settlement_scheduled=settlement.wake,
    )
    mailbox = Mailbox(engine)
    # On the host the HTTP API binds (WAYBILL_HOST): 0.0.0.0 in a container, so the notifier's
    # container reaches it.
    smtp = SmtpServer(MailboxHandler(mailbox, knobs), settings.host, settings.sandbox_smtp_port)

    # One process (the outside world has no roles): everything runs under the workers role so
    # WAYBILL_ROLES still means one thing everywhere.
    life = Lifecycle(SERVICE, settings.run_roles)
    life.cleanup("engine", engine.dispose)
    life.step("database", lambda: prepare_database(settings, database, MIGRATIONS))
    life.cleanup("webhook-client", client.aclose)
    life.component(Role.WORKERS, "webhook-deliveries", lambda: deliverer)
    life.task(Role.WORKERS, "settlement", settlement.run)
    life.component(Role.WORKERS, "smtp-server", lambda: smtp)

    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[api.router, admin.router, queues_router(engine, [queue], no_tenant)],
        health_checks={"database": database_check(engine)},
        lifespan=life.lifespan,
        key_routes=False,  # the outside world: no Waybill API keys
    )
    app.add_exception_handler(ProviderError, api.provider_error_handler)
    app.state.engine = engine
    app.state.knobs = knobs
    app.state.requests = RequestLog()
    app.state.provider = provider
    app.state.sms = SmsProvider(engine)
    app.state.mailbox = mailbox
    app.state.settlement = settlement
    app.state.deliverer = deliverer
    app.state.queues = [queue]
    return app


def build_asgi(settings: SandboxSettings | None = None) -> FaultLayer:
    """The served application: the FastAPI app behind the provider-API fault layer."""
    settings = settings or SandboxSettings()
    app = build_app(settings)
    return FaultLayer(app, app.state.knobs, app.state.requests, hang_s=settings.sandbox_hang_s)
