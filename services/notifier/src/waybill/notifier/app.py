"""Bootstrap: the kit's parts (store, relay, consumer, health), the webhook endpoints' routes
and deliveries, and customer email and SMS (their queues, channels and routes), wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from waybill.common.breaker import CircuitBreakers
from waybill.common.contracts import notifier as contract
from waybill.common.http.outbound import AllowList, checked_client
from waybill.common.lifecycle import Role
from waybill.common.queue import JobQueue, QueueWorker
from waybill.common.queue.admin import queues_router
from waybill.common.registry import EventRegistry
from waybill.common.sealing import Sealer
from waybill.common.service import ServiceKit
from waybill.notifier import tables
from waybill.notifier.api import ERROR_STATUS, router
from waybill.notifier.customer_api import admin_tenant
from waybill.notifier.customer_api import router as customer_router
from waybill.notifier.customers import CustomerNotifications
from waybill.notifier.domain.messages import parse_delays
from waybill.notifier.domain.schedule import Schedule, parse_schedule
from waybill.notifier.handlers import NotifierHandlers
from waybill.notifier.metrics import SERVICE
from waybill.notifier.rendering import Renderer
from waybill.notifier.settings import NotifierSettings
from waybill.notifier.subscriptions import subscriptions
from waybill.notifier.workers.deliveries import DeliverySender, deliveries_queue
from waybill.notifier.workers.emails import SmtpChannel
from waybill.notifier.workers.messages import (
    EMAILS,
    SMS,
    Channel,
    MessageSender,
    message_queue,
)
from waybill.notifier.workers.sms import SmsChannel, sms_client

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
    customers, senders = _customer_messages(kit, settings, breakers)
    kit.consume(subscriptions(handlers, customers))
    queues = [deliveries, customers.emails, customers.sms]
    app = kit.app(
        routers=[router, customer_router, queues_router(kit.engine, queues, admin_tenant)],
        error_status=ERROR_STATUS,
    )
    app.state.handlers = handlers
    app.state.customers = customers
    app.state.message_workers = senders
    app.state.deliveries = worker
    return app


def _customer_messages(
    kit: ServiceKit, settings: NotifierSettings, breakers: CircuitBreakers
) -> tuple[CustomerNotifications, list[QueueWorker]]:
    """The emails and sms queues, what fills them (consumed events) and what empties them."""

    def queue(name: str, timeout_s: float) -> JobQueue:
        return message_queue(
            kit.engine,
            name,
            timeout_s=timeout_s,
            aging_s=settings.notifier_aging_s,
            backoff_s=settings.notifier_message_backoff_s,
            backoff_max_s=settings.notifier_message_backoff_max_s,
        )

    customers = CustomerNotifications(
        kit.engine,
        emails=queue(EMAILS, settings.notifier_smtp_timeout_s),
        sms=queue(SMS, settings.notifier_sms_timeout_s),
        delays=parse_delays(settings.notifier_template_delays_s),
    )
    renderer = Renderer(Sealer(settings.delivery_code_keys))
    client = sms_client(
        settings.notifier_sms_url,
        settings.notifier_sms_api_key or settings.provider_api_key,
        settings.notifier_sms_timeout_s,
    )
    kit.life.cleanup("sms-client", client.aclose)
    channels: dict[str, Channel] = {
        EMAILS: SmtpChannel(
            renderer,
            settings.notifier_smtp_host,
            settings.notifier_smtp_port,
            settings.notifier_mail_from,
            timeout_s=settings.notifier_smtp_timeout_s,
        ),
        SMS: SmsChannel(renderer, client),
    }
    workers = []
    for job_queue in (customers.emails, customers.sms):
        sender = MessageSender(
            job_queue,
            channels[job_queue.name],
            kit.store,
            customers,
            max_attempts=settings.notifier_message_attempts,
            breakers=breakers,
        )
        worker = QueueWorker(
            job_queue,
            sender.handle,
            dsn=settings.asyncpg_dsn(kit.database),
            service=SERVICE,
            concurrency=settings.notifier_message_concurrency,
        )
        _run_in_workers(kit, worker)
        workers.append(worker)
    return customers, workers


def _run_in_workers(kit: ServiceKit, worker: QueueWorker) -> None:
    kit.life.component(Role.WORKERS, worker.queue.name, lambda: worker)
