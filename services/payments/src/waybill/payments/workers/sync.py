"""Payment sync: settle payments left ``processing`` by asking the provider.

Webhooks get lost (the provider's retries give up, ``pm_card_async_silent`` never sends one);
every ``payments_sync_interval_s`` a periodic job of the kit (one leader per database) asks the
provider about each payment processing for longer than ``threshold_s`` -- the webhook's
chance to arrive first -- and records what it says. An operator's run (``POST
/admin/payments/sync``, the job's ``run_now``) asks about every processing payment of the
tenant now, or those processing longer than its ``older_than_s``. Settling is idempotent (the
decider ignores news it already has), so a run-now beside the periodic run is harmless.

What a run settles goes on in each payment's own trace and correlation id (a ``payment-sync
process`` span continuing the payment's first event's trace, linked to the run's span), as a
webhook's news would: the order's trace and logs do not end at a lost webhook.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import structlog

from waybill.common.eventstore import Caller
from waybill.common.jobs import PeriodicJob
from waybill.common.observability.tracing import current_link, messaging_span
from waybill.payments.domain import payment as p
from waybill.payments.gateway import ProviderError, ProviderGateway
from waybill.payments.handlers import PaymentHandlers, Recorded
from waybill.payments.intents import command_for
from waybill.payments.views import SyncResult

BATCH = 500
log = structlog.get_logger(__name__)


class PaymentSync:
    def __init__(
        self,
        handlers: PaymentHandlers,
        gateway: ProviderGateway,
        *,
        threshold_s: float,
        on_provider_work: Callable[[str], None],
    ) -> None:
        self.handlers = handlers
        self.gateway = gateway
        self.threshold_s = threshold_s
        self.on_provider_work = on_provider_work

    async def settle(
        self, *, tenant_id: str | None = None, older_than_s: float | None = None
    ) -> SyncResult:
        """Settle what the provider has settled, for payments processing longer than
        ``older_than_s`` (default: the periodic threshold); ``tenant_id`` limits it to one
        tenant."""
        older_than = timedelta(seconds=self.threshold_s if older_than_s is None else older_than_s)
        due = await self.handlers.processing_since(
            self.handlers.clock() - older_than, tenant_id=tenant_id, limit=BATCH
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
            recorded = await self._record(tenant, payment_id, command)
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

    async def _record(self, tenant: str, payment_id: str, command: p.Command) -> Recorded:
        async with self.handlers.engine.connect() as conn:
            origin = await self.handlers.origin_in(conn, payment_id)
        correlation_id = origin.correlation_id or f"payment-sync-{uuid.uuid4()}"
        with messaging_span(
            "payment-sync process",
            origin.traceparent,
            {"messaging.operation.type": "process", "waybill.payment.id": payment_id},
            links=current_link(),
        ):
            return await self.handlers.record(Caller(tenant, correlation_id), payment_id, command)


PaymentSyncJob = PeriodicJob[..., SyncResult]


def payment_sync_job(sync: PaymentSync, *, interval_s: float, service: str) -> PaymentSyncJob:
    """The periodic job (leader per database) around ``sync.settle``; ``run_now`` is the
    operator's sync."""
    return PeriodicJob(
        sync.handlers.engine,
        sync.settle,
        name="payment-sync",
        interval_s=interval_s,
        service=service,
    )
