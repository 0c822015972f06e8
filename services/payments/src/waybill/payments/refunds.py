"""Refunds an operator asks for: check the rules, ask the provider, record its answer.

The rules are checked before the provider is called, so a refund the decider would refuse
never moves money; the provider's answer is then recorded like any other news. The provider
key comes from the payment's refund history, so a retry of the same request after a lost
answer returns the same refund instead of a second one.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from waybill.common.eventstore import Caller
from waybill.payments import repository
from waybill.payments.domain import payment as p
from waybill.payments.domain.errors import (
    PaymentNotFound,
    ProviderUnreachable,
    RefundRefusedByProvider,
)
from waybill.payments.gateway import ProviderGateway, ProviderRejected, ProviderUnavailable
from waybill.payments.handlers import PaymentHandlers
from waybill.payments.views import PaymentView

log = structlog.get_logger(__name__)


async def refund_payment(
    handlers: PaymentHandlers,
    gateway: ProviderGateway,
    caller: Caller,
    payment_id: str,
    *,
    amount_cents: int | None,
    reason: str | None,
    on_provider_work: Callable[[str], None],
) -> PaymentView:
    async with handlers.engine.connect() as conn:
        if await repository.tenant_of(conn, payment_id) != caller.tenant_id:
            raise PaymentNotFound(f"payment {payment_id} not found")
        state = await handlers.load_in(conn, payment_id)
    amount = amount_cents if amount_cents is not None else state.refundable_cents
    # Dry run of the rules: INVALID_TRANSITION / REFUND_EXCEEDS_CAPTURED before any money moves.
    p.decide(state, p.Refund(refund_id="", amount_cents=amount, reason=reason))
    assert state.provider_payment_id is not None  # captured payments have one
    try:
        refund = await gateway.create_refund(
            idempotency_key=p.refund_idempotency_key(state),
            intent_id=state.provider_payment_id,
            amount_cents=amount,
        )
    except ProviderUnavailable as exc:
        raise ProviderUnreachable(
            "The payment provider cannot be reached right now; retry shortly.",
            retry_after_s=exc.retry_after_s or 5,
        ) from exc
    except ProviderRejected as exc:
        raise RefundRefusedByProvider(exc.message, extra={"provider_code": exc.code}) from exc
    command = p.Refund(refund_id=refund.id, amount_cents=refund.amount, reason=reason)
    recorded = await handlers.record(caller, payment_id, command)
    if recorded.newly_needs_provider:
        on_provider_work(payment_id)
    log.info("payment_refund_succeeded", payment_id=payment_id, amount_cents=refund.amount)
    return await handlers.get_payment(caller.tenant_id, payment_id)
