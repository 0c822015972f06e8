"""Bootstrap: settings, database, store, outbox relay, consumer, dispatcher, SLA job and routes,
wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from waybill.common import topics
from waybill.common.asyncapi import service_document
from waybill.common.auth import IssuedKey, KeyStore, issue_key, revoke_key
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.contracts import shipping as contract
from waybill.common.db import create_engine, prepare_database
from waybill.common.eventstore import EventStore
from waybill.common.http.app import create_app
from waybill.common.http.health import broker_check, database_check
from waybill.common.lifecycle import Lifecycle, Role
from waybill.common.observability.logging import configure_logging
from waybill.common.outbox import OutboxRelay
from waybill.common.registry import EventRegistry
from waybill.common.sealing import Sealer
from waybill.common.settings import service_database
from waybill.shipping import tables
from waybill.shipping.agents import AgentDirectory
from waybill.shipping.api import ERROR_STATUS, Services, router
from waybill.shipping.codes import DeliveryCodes
from waybill.shipping.handlers import Policy, ShippingHandlers
from waybill.shipping.settings import ShippingSettings
from waybill.shipping.subscriptions import subscriptions
from waybill.shipping.workers.dispatch import dispatcher
from waybill.shipping.workers.sla import sla_watch

SERVICE = "shipping"
MIGRATIONS = Path(__file__).with_name("migrations")


def build_app(settings: ShippingSettings | None = None) -> FastAPI:
    settings = settings or ShippingSettings()
    configure_logging(SERVICE, settings)
    database = service_database(SERVICE)
    engine = create_engine(
        settings.database_dsn(database), pool_size=settings.shipping_db_pool_size
    )
    appended = contract.register(EventRegistry())
    store = EventStore(
        tables.events,
        tables.outbox,
        source=f"/waybill/{SERVICE}",
        topic=topics.SHIPPING_EVENTS,
        registry=appended,
    )
    codes = DeliveryCodes(Sealer(settings.delivery_code_keys))
    policy = Policy(
        sla=timedelta(hours=settings.shipping_sla_hours),
        offer_ttl=timedelta(seconds=settings.shipping_offer_ttl_s),
        wave_size=settings.shipping_offer_wave_size,
        max_attempts=settings.shipping_max_attempts,
        waiting_recheck=timedelta(seconds=settings.shipping_waiting_recheck_s),
        lock_timeout_ms=settings.shipping_lock_timeout_ms,
    )
    handlers = ShippingHandlers(engine=engine, store=store, codes=codes, policy=policy)
    dispatch = dispatcher(
        handlers, engine, interval_s=settings.shipping_dispatch_interval_s, service=SERVICE
    )
    handlers.wake_dispatcher = dispatch.wake
    sla = sla_watch(handlers, engine, interval_s=settings.shipping_sla_interval_s, service=SERVICE)

    async def issue_agent_key(tenant_id: str, agent_id: str) -> IssuedKey:
        return await issue_key(settings, tenant_id=tenant_id, role="agent", agent_id=agent_id)

    async def revoke_agent_key(tenant_id: str, key_id: str) -> bool:
        return await revoke_key(settings, key_id, tenant_id=tenant_id)

    agents = AgentDirectory(
        engine, issue_agent_key, revoke_agent_key, policy=policy, wake_dispatcher=dispatch.wake
    )
    key_store = KeyStore(settings)
    relay = OutboxRelay(settings.asyncpg_dsn(database), settings.bootstrap_servers, service=SERVICE)
    subscribed = subscriptions(handlers)

    life = Lifecycle(SERVICE, settings.run_roles)
    life.cleanup("engine", engine.dispose)
    life.step("database", lambda: prepare_database(settings, database, MIGRATIONS))
    life.component(Role.API, "key-store", lambda: key_store)
    life.task(Role.RELAY, "outbox-relay", relay.run, stop=relay.stop)
    life.component(Role.WORKERS, "dispatcher", lambda: dispatch)
    life.component(Role.WORKERS, "sla-watch", lambda: sla)
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
    app.state.services = Services(
        handlers=handlers,
        agents=agents,
        codes=codes,
        registry=appended,
        max_attempts=settings.shipping_max_attempts,
    )
    app.state.handlers = handlers
    app.state.dispatcher = dispatch
    app.state.sla = sla
    app.state.key_store = key_store
    return app
