"""Provider webhooks in: deduplicated by provider event id, mapped to our payment, applied.

The event id is recorded in ``provider_events`` in the same transaction as the effect, so a
duplicate (the provider retrying, or its duplicate knob) finds the row and changes nothing; two
copies arriving together serialise on that row's primary key. The intent is mapped to our
payment by ``metadata.payment_id`` (we send it when charging) or, failing that, by its id.

``charge.refunded`` follows refunds we made ourselves and recorded from the provider's answer
(with the refund id); it carries no refund id, so applying it too could count a refund twice.
It is acknowledged and recorded, with no effect.

The provider's request starts a trace of its own; the news is applied in a
``<provider event type> process`` span that continues the payment's trace instead (its first
event's traceparent), linked to the request's span, with the saga's correlation id: the
order's trace goes on through the webhook. Not from the intent's metadata: that is part of the
charge's idempotent request, and a traceparent differing between retries of one charge (each
runs in its own span) would make the provider refuse the retry (``idempotency_key_reused``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import structlog
from pydantic import BaseModel, ConfigDict

from waybill.common.eventstore import Caller, retry_on_conflict
from waybill.common.observability.tracing import current_link, messaging_span
from waybill.payments import repository
from waybill.payments.gateway import Intent
from waybill.payments.handlers import PaymentHandlers, Recorded
from waybill.payments.intents import command_for

log = structlog.get_logger(__name__)

SETTLING_TYPES = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed"})


class WebhookData(BaseModel):
    model_config = ConfigDict(extra="ignore")
    object: Intent


class ProviderEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: str
    created: int | None = None
    data: WebhookData


class WebhookOutcome(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    ignored = "ignored"


async def apply_webhook(
    handlers: PaymentHandlers,
    event: ProviderEvent,
    *,
    correlation_id: str,
    on_provider_work: Callable[[str], None],
) -> WebhookOutcome:
    """Apply ``event`` once; ``on_provider_work(payment_id)`` after the commit if the payment
    now needs the provider (captured after its order closed: refund)."""

    async def attempt() -> tuple[WebhookOutcome, Recorded | None]:
        async with handlers.engine.begin() as conn:
            if not await repository.record_provider_event(conn, event.id, event.type):
                return WebhookOutcome.duplicate, None
            intent = event.data.object
            payment_id = intent.metadata.get("payment_id") or await repository.find_by_provider_id(
                conn, intent.id
            )
            tenant_id = await repository.tenant_of(conn, payment_id) if payment_id else None
            if payment_id is None or tenant_id is None:
                log.warning(
                    "payment_webhook_unmatched", provider_event_id=event.id, intent=intent.id
                )
                return WebhookOutcome.ignored, None
            await repository.link_provider_event(conn, event.id, payment_id)
            command = command_for(intent) if event.type in SETTLING_TYPES else None
            if command is None:
                return WebhookOutcome.ignored, None
            origin = await handlers.origin_in(conn, payment_id)
            caller = Caller(tenant_id, origin.correlation_id or correlation_id)
            with messaging_span(
                f"{event.type} process",
                origin.traceparent,
                {
                    "messaging.system": "webhook",
                    "messaging.operation.type": "process",
                    "messaging.message.id": event.id,
                    "waybill.payment.id": payment_id,
                },
                links=current_link(),
            ):
                recorded = await handlers.record_in(conn, caller, payment_id, command)
            if not recorded.events:
                return WebhookOutcome.ignored, recorded  # news we had already (or stale news)
            return WebhookOutcome.applied, recorded

    outcome, recorded = await retry_on_conflict(attempt)
    if recorded is not None and recorded.newly_needs_provider:
        on_provider_work(recorded.after.payment_id)
    log.info(
        "payment_webhook_received",
        provider_event_id=event.id,
        event_type=event.type,
        outcome=outcome.value,
    )
    return outcome
