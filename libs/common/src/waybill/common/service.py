"""The skeleton every event-sourced Waybill service has, wired once.

Each service's ``app.py`` used to build the same dozen parts by hand (engine, event store,
outbox relay, key store, the lifecycle's database step and cleanup, the consumer from its
subscription table, health checks, the AsyncAPI document, ``create_app``) and they were
already drifting between orders, payments and shipping. ``ServiceKit`` builds them from what
differs (the service's name, tables, registry, migrations) and leaves the service to add what
is its own: handlers, workers, routers, and any extra part on ``kit.life``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, FastAPI
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.asyncapi import service_document
from waybill.common.auth import KeyStore, ensure_auth_schema
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.db import create_engine, migrate_database, prepare_database
from waybill.common.eventstore import EventStore
from waybill.common.http.app import create_app
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.health import broker_check, database_check
from waybill.common.lifecycle import Lifecycle, Role
from waybill.common.observability.logging import configure_logging
from waybill.common.outbox import OutboxRelay
from waybill.common.registry import EventRegistry
from waybill.common.settings import WaybillSettings, service_database
from waybill.common.topics import events_topic


@dataclass
class ServiceKit:
    """A service's shared parts. Construct it first in ``build_app``; then add the service's
    own parts to ``life`` (workers, clients) and finish with ``app(...)``."""

    name: str
    settings: WaybillSettings
    migrations: Path
    events: Table
    outbox: Table
    inbox: Table
    registry: EventRegistry  # every event the service appends (its streams' types)
    pool_size: int = 10
    database: str = field(init=False)
    engine: AsyncEngine = field(init=False)
    store: EventStore = field(init=False)
    key_store: KeyStore = field(init=False)
    life: Lifecycle = field(init=False)
    _subscriptions: Subscriptions | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        configure_logging(self.name, self.settings)
        self.database = database = service_database(self.name)
        self.engine = create_engine(self.settings.database_dsn(database), pool_size=self.pool_size)
        self.store = EventStore(
            self.events,
            self.outbox,
            source=f"/waybill/{self.name}",
            topic=events_topic(self.name),
            registry=self.registry,
        )
        self.key_store = KeyStore(self.settings)
        relay = OutboxRelay(
            self.settings.asyncpg_dsn(database), self.settings.bootstrap_servers, service=self.name
        )
        settings, migrations = self.settings, self.migrations
        self.life = Lifecycle(self.name, settings.run_roles)
        self.life.cleanup("engine", self.engine.dispose)
        self.life.step("database", lambda: prepare_database(settings, database, migrations))
        self.life.component(Role.API, "key-store", lambda: self.key_store)
        self.life.task(Role.RELAY, "outbox-relay", relay.run, stop=relay.stop)

    def consume(self, subscriptions: Subscriptions, *, engine: AsyncEngine | None = None) -> None:
        """Run the service's consumer group on its subscription table (``engine``: another
        engine over the same pool, e.g. one whose transactions report their commits)."""
        self._subscriptions = subscriptions
        settings = self.settings
        self.life.component(
            Role.CONSUMER,
            "consumer",
            lambda: EventConsumer.subscribing(
                subscriptions,
                bootstrap_servers=settings.bootstrap_servers,
                engine=engine or self.engine,
                inbox=self.inbox,
                service=self.name,
                poison_switch=settings.test_poison,
            ),
        )

    def app(
        self, *, routers: Sequence[APIRouter], error_status: ErrorStatus | None = None
    ) -> FastAPI:
        """The FastAPI app: the routers, health (database, broker), metrics, docs, AsyncAPI,
        and the lifecycle as its lifespan."""
        subscribed = self._subscriptions
        if subscribed is None:
            raise RuntimeError(f"{self.name}: call consume() before app(): it has no consumer")
        app = create_app(
            service=self.name,
            settings=self.settings,
            routers=routers,
            error_status=error_status,
            health_checks={
                "database": database_check(self.engine),
                "broker": broker_check(self.settings.bootstrap_servers),
            },
            lifespan=self.life.lifespan,
            asyncapi=lambda: service_document(
                service=self.name, appended=self.registry.models(), subscriptions=subscribed
            ),
        )
        app.state.key_store = self.key_store
        app.state.migrate = self.migrate
        return app

    async def migrate(self) -> None:
        """``waybill-service migrate`` (the migration Job; http/serve.py): the service's
        database to head, and the shared auth schema in place (idempotent)."""
        await migrate_database(self.settings, self.database, self.migrations)
        await ensure_auth_schema(self.settings)
