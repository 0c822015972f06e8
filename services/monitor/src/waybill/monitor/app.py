"""Bootstrap: the kit's parts (database, keys, lifecycle), the recorder consuming every topic,
the dead letters' producer and notifier client, health polling, and the admin API, wired once.

The monitor appends no events: its kit's event store and relay stay idle, and its consumer is
its own (``recorder``: the records it reads are not all domain events), so the app is built
from ``create_app`` directly rather than ``kit.app`` (which expects a subscription table).
"""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from waybill.common import topics
from waybill.common.asyncapi import asyncapi_document
from waybill.common.contracts import notifier, orders, payments, shipping
from waybill.common.contracts.event import DomainEvent
from waybill.common.http.app import create_app
from waybill.common.http.health import HealthCheck, broker_check, database_check
from waybill.common.lifecycle import Role
from waybill.common.registry import EventRegistry
from waybill.common.service import ServiceKit
from waybill.common.topics import RETRY_OUTCOMES
from waybill.monitor import operations, tables
from waybill.monitor.api import ERROR_STATUS, router
from waybill.monitor.dead_letters import DeadLetters
from waybill.monitor.ingest import CONSUMER_GROUP, Ingest
from waybill.monitor.recorder import Recorder
from waybill.monitor.settings import MonitorSettings
from waybill.monitor.ui import install as install_ui

SERVICE = "monitor"
MIGRATIONS = Path(__file__).with_name("migrations")


def consumed_events() -> list[type[DomainEvent]]:
    """Every public event of every service: the monitor reads all of them."""
    every = (
        *orders.ORDER_EVENTS,
        *payments.PAYMENT_EVENTS,
        *shipping.SHIPPING_EVENTS,
        *shipping.AGENT_EVENTS,
        *notifier.NOTIFIER_EVENTS,
    )
    return [model for model in every if model.public]


def registry() -> EventRegistry:
    """The schemas of every event the monitor reads (projections, edited retries)."""
    return EventRegistry().add(*consumed_events())


def consumed_topics() -> list[str]:
    events = sorted({model.topic() for model in consumed_events()})
    return [*events, topics.DEAD_LETTERS, RETRY_OUTCOMES]


def build_app(settings: MonitorSettings | None = None) -> FastAPI:
    settings = settings or MonitorSettings()
    kit = ServiceKit(
        SERVICE,
        settings,
        MIGRATIONS,
        tables.events,
        tables.outbox,
        tables.inbox,
        registry=EventRegistry(),  # it appends nothing
        pool_size=settings.monitor_db_pool_size,
    )
    schemas = registry()
    ingest = Ingest(
        schemas,
        operator_tenant=settings.operator_tenant,
        poison_group=CONSUMER_GROUP if settings.test_poison else None,
    )
    kit.life.component(
        Role.CONSUMER,
        "recorder",
        lambda: Recorder(
            bootstrap_servers=settings.bootstrap_servers,
            topics=consumed_topics(),
            engine=kit.engine,
            ingest=ingest,
        ),
    )
    notifier_client = httpx.AsyncClient(
        base_url=settings.monitor_notifier_url, timeout=settings.monitor_replay_timeout_s
    )
    letters = DeadLetters(
        kit.engine, schemas, bootstrap_servers=settings.bootstrap_servers, notifier=notifier_client
    )
    # Every role: the API retries one dead letter, the bulk jobs' worker many.
    kit.life.component(None, "dead-letters", lambda: letters)
    ops = operations.wire(kit, settings, letters)
    health_client = httpx.AsyncClient()
    kit.life.cleanup("notifier-client", notifier_client.aclose)
    kit.life.cleanup("health-client", health_client.aclose)
    own_checks: dict[str, HealthCheck] = {
        "database": database_check(kit.engine),
        "broker": broker_check(settings.bootstrap_servers),
    }
    app = create_app(
        service=SERVICE,
        settings=settings,
        routers=[router, *ops.routers],
        error_status=ERROR_STATUS,
        health_checks=own_checks,
        lifespan=kit.life.lifespan,
        asyncapi=lambda: asyncapi_document(
            service=SERVICE,
            publishes={},
            consumes={
                topic: [m for m in consumed_events() if m.topic() == topic]
                for topic in sorted({m.topic() for m in consumed_events()})
            },
        ),
    )
    app.state.key_store = kit.key_store
    app.state.settings = settings
    app.state.engine = kit.engine
    app.state.own_checks = own_checks
    app.state.health_client = health_client
    app.state.dead_letters = letters
    app.state.operations = ops
    app.state.bulk_jobs = ops.bulk
    install_ui(app, settings)
    return app
