"""Bootstrap: the kit's parts (store, relay, consumer, health), the dispatcher, the SLA job,
the agent directory and the routes, wired once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from waybill.common.auth import IssuedKey, issue_key, revoke_key
from waybill.common.contracts import shipping as contract
from waybill.common.lifecycle import Role
from waybill.common.registry import EventRegistry
from waybill.common.sealing import Sealer
from waybill.common.service import ServiceKit
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


def policy_of(settings: ShippingSettings) -> Policy:
    return Policy(
        sla=timedelta(hours=settings.shipping_sla_hours),
        offer_ttl=timedelta(seconds=settings.shipping_offer_ttl_s),
        wave_size=settings.shipping_offer_wave_size,
        max_attempts=settings.shipping_max_attempts,
        waiting_recheck=timedelta(seconds=settings.shipping_waiting_recheck_s),
        lock_timeout_ms=settings.shipping_lock_timeout_ms,
    )


def build_app(settings: ShippingSettings | None = None) -> FastAPI:
    settings = settings or ShippingSettings()
    kit = ServiceKit(
        SERVICE,
        settings,
        MIGRATIONS,
        tables.events,
        tables.outbox,
        tables.inbox,
        registry=contract.register(EventRegistry()),
        pool_size=settings.shipping_db_pool_size,
    )
    engine = kit.engine
    codes = DeliveryCodes(Sealer(settings.delivery_code_keys))
    policy = policy_of(settings)
    handlers = ShippingHandlers(engine=engine, store=kit.store, codes=codes, policy=policy)
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
        engine,
        kit.store,
        issue_agent_key,
        revoke_agent_key,
        policy=policy,
        wake_dispatcher=dispatch.wake,
    )

    kit.life.component(Role.WORKERS, "dispatcher", lambda: dispatch)
    kit.life.component(Role.WORKERS, "sla-watch", lambda: sla)
    kit.consume(subscriptions(handlers))
    app = kit.app(routers=[router], error_status=ERROR_STATUS)
    app.state.services = Services(
        handlers=handlers,
        agents=agents,
        codes=codes,
        registry=kit.registry,
        max_attempts=settings.shipping_max_attempts,
    )
    app.state.handlers = handlers
    app.state.dispatcher = dispatch
    app.state.sla = sla
    return app
