"""Payment sync: settle payments left ``processing`` by asking the provider.

Webhooks get lost (the provider's retries give up, ``pm_card_async_silent`` never sends one);
every ``interval_s`` this job asks the provider about each payment processing for longer than
``threshold_s`` and records what it says. One active runner across replicas: the periodic run
first takes a PostgreSQL advisory lock and skips its turn if another replica holds it. An
operator's run (``POST /admin/payments/sync``) does not wait for the lock: settling is
idempotent (the decider ignores news it already has), the lock only saves work.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from waybill.common.eventstore import Caller
from waybill.payments.domain import payment as p
from waybill.payments.gateway import ProviderError, ProviderGateway
from waybill.payments.handlers import PaymentHandlers
from waybill.payments.intents import command_for
from waybill.payments.views import SyncResult

SYNC_LOCK_KEY = 0x0_5A7C_9A75  # any constant unique among this database's advisory locks
BATCH = 500
log = structlog.get_logger(__name__)


class PaymentSync:
    def __init__(
        self,
        handlers: PaymentHandlers,
        gateway: ProviderGateway,
        *,
        interval_s: float,
        threshold_s: float,
        on_provider_work: Callable[[str], None],
    ) -> None:
        self.handlers = handlers
        self.gateway = gateway
        self.interval_s = interval_s
        self.threshold = timedelta(seconds=threshold_s)
        self.on_provider_work = on_provider_work

    async def run_once(self, *, tenant_id: str | None = None) -> SyncResult:
        """Settle what the provider has settled; ``tenant_id`` limits it to one tenant."""
        due = await self.handlers.processing_since(
            self.handlers.clock() - self.threshold, tenant_id=tenant_id, limit=BATCH
        )
        result = SyncResult(processed=0, succeeded=0, failed=0)
        for payment_id, tenant, intent_id in due:
            result.processed += 1
            if intent_id is None:
                continue
            try:
                intent = await self.gateway.get_intent(intent_id)
            except ProviderError as exc:
                log.warning("payment_sync_query_failed", payment_id=payment_id, error=str(exc))
                continue
            command = command_for(intent)
            if command is None or isinstance(command, p.MarkProcessing):
                continue
            caller = Caller(tenant_id=tenant, correlation_id=f"payment-sync-{uuid.uuid4()}")
            recorded = await self.handlers.record(caller, payment_id, command)
            if not recorded.events:
                continue  # a webhook got there first
            if recorded.after.status is p.PaymentStatus.captured:
                result.succeeded += 1
            elif recorded.after.status is p.PaymentStatus.failed:
                result.failed += 1
            if recorded.newly_needs_provider:
                self.on_provider_work(payment_id)
        if result.processed:
            log.info("payment_sync_completed", **result.model_dump())
        return result

    async def run_if_leader(self) -> SyncResult | None:
        """One periodic run, if no other replica is running one; None otherwise."""
        async with self.handlers.engine.connect() as conn:
            held = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY})
            await conn.commit()
            if not held:
                return None
            try:
                return await self.run_once()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
                await conn.commit()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_if_leader()
            except (OperationalError, DBAPIError, OSError) as exc:
                log.warning("payment_sync_failed", error=str(exc))
