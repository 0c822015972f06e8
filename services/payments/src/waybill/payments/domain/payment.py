"""The payment aggregate as a decider: ``decide(state, command) -> events``, ``evolve``.

Status machine (a move not in ``TRANSITIONS`` never happens)::

    (new) --create--> pending --processing--> processing --capture--> captured --refund--> refunded
                      |  --capture---------------------------------^
                      |  --fail--> failed  <--fail-- processing

    (further partial refunds may follow while money is left: refunded --refund--> refunded)

Provider news arrives late, twice and out of order (webhooks, payment sync, the charger's own
answer). News that would move a payment backwards -- ``processing`` after ``captured``, a
failure after a capture, a capture after a failure (which the provider cannot produce) -- is
*ignored*: ``decide`` returns no events and the caller logs it. Only commands a caller chose
(a refund) raise errors.

``payment.order_closed`` is private to payments (not in the shared contract, never on Kafka):
the order was cancelled or expired, so a captured payment must be refunded, now or once it is
captured.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar

from waybill.common.contracts.payments import (
    PaymentCaptured,
    PaymentCreated,
    PaymentEvent,
    PaymentFailed,
    PaymentProcessing,
    PaymentRefunded,
)
from waybill.payments.domain.errors import InvalidTransition, PaymentNotFound, RefundExceedsCaptured

# Fixed forever: payment ids derived from it are stable across releases and replicas.
PAYMENT_ID_NAMESPACE = uuid.UUID("5d1c0a5e-9f0b-4c55-8a57-2c4a3b8f6e01")


def payment_id_for(tenant_id: str, order_id: str) -> str:
    """The one payment of an order: derived, so a redelivered ``order.placed`` finds it."""
    return "pay_" + uuid.uuid5(PAYMENT_ID_NAMESPACE, f"{tenant_id}:{order_id}").hex


class PaymentOrderClosed(PaymentEvent):
    """The order was cancelled or expired: its money must go back (private event)."""

    event_type: ClassVar[str] = "payment.order_closed"
    public: ClassVar[bool] = False
    payment_id: str
    order_id: str
    reason: str


class PaymentStatus(StrEnum):
    new = "new"  # no events yet; never visible through the API
    pending = "pending"
    processing = "processing"
    captured = "captured"
    failed = "failed"
    refunded = "refunded"


TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.new: frozenset({PaymentStatus.pending}),
    PaymentStatus.pending: frozenset(
        {PaymentStatus.processing, PaymentStatus.captured, PaymentStatus.failed}
    ),
    PaymentStatus.processing: frozenset({PaymentStatus.captured, PaymentStatus.failed}),
    PaymentStatus.captured: frozenset({PaymentStatus.refunded}),
    PaymentStatus.refunded: frozenset({PaymentStatus.refunded}),  # a further partial refund
    PaymentStatus.failed: frozenset(),
}
SETTLED = frozenset({PaymentStatus.captured, PaymentStatus.failed, PaymentStatus.refunded})


@dataclass(frozen=True)
class Payment:
    payment_id: str
    status: PaymentStatus = PaymentStatus.new
    version: int = 0
    order_id: str = ""
    amount_cents: int = 0
    currency: str = ""
    payment_method: str = ""
    provider: str = ""
    provider_payment_id: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    refunded_cents: int = 0
    refund_ids: tuple[str, ...] = ()
    order_closed: bool = False

    @property
    def refundable_cents(self) -> int:
        if self.status not in (PaymentStatus.captured, PaymentStatus.refunded):
            return 0
        return self.amount_cents - self.refunded_cents


# --- commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePayment:
    payment_id: str
    order_id: str
    amount_cents: int
    currency: str
    payment_method: str
    provider: str


@dataclass(frozen=True)
class MarkProcessing:
    provider_payment_id: str


@dataclass(frozen=True)
class Capture:
    provider_payment_id: str


@dataclass(frozen=True)
class Fail:
    code: str
    reason: str


@dataclass(frozen=True)
class Refund:
    refund_id: str
    amount_cents: int
    reason: str | None = None


@dataclass(frozen=True)
class CloseOrder:
    reason: str


Command = CreatePayment | MarkProcessing | Capture | Fail | Refund | CloseOrder


def decide(state: Payment, command: Command) -> list[PaymentEvent]:
    """The events ``command`` produces on ``state`` ([] = nothing new), or a domain error."""
    if isinstance(command, CreatePayment):
        if state.status is not PaymentStatus.new:
            return []  # the same order placed again: its payment exists
        return [
            PaymentCreated(
                payment_id=command.payment_id,
                order_id=command.order_id,
                amount_cents=command.amount_cents,
                currency=command.currency,
                payment_method=command.payment_method,
                provider=command.provider,
            )
        ]
    if state.status is PaymentStatus.new:
        raise PaymentNotFound(f"payment {state.payment_id} not found")
    match command:
        case MarkProcessing():
            if state.status is not PaymentStatus.pending:
                return []
            return [
                PaymentProcessing(
                    payment_id=state.payment_id,
                    order_id=state.order_id,
                    provider_payment_id=command.provider_payment_id,
                )
            ]
        case Capture():
            if state.status not in (PaymentStatus.pending, PaymentStatus.processing):
                return []
            return [
                PaymentCaptured(
                    payment_id=state.payment_id,
                    order_id=state.order_id,
                    amount_cents=state.amount_cents,
                    currency=state.currency,
                    provider=state.provider,
                    provider_payment_id=command.provider_payment_id,
                )
            ]
        case Fail():
            if state.status not in (PaymentStatus.pending, PaymentStatus.processing):
                return []
            return [
                PaymentFailed(
                    payment_id=state.payment_id,
                    order_id=state.order_id,
                    code=command.code,
                    reason=command.reason,
                )
            ]
        case Refund():
            return _decide_refund(state, command)
        case CloseOrder():
            if state.order_closed:
                return []
            return [
                PaymentOrderClosed(
                    payment_id=state.payment_id, order_id=state.order_id, reason=command.reason
                )
            ]
    raise TypeError(f"unknown command {command!r}")  # pragma: no cover - exhaustive match


def _decide_refund(state: Payment, command: Refund) -> list[PaymentEvent]:
    if command.refund_id in state.refund_ids:
        return []  # the provider's answer recorded twice (a retry after a lost response)
    if state.refundable_cents <= 0:
        raise InvalidTransition(
            f"payment {state.payment_id} is {state.status.value}; nothing captured to refund"
        )
    if not 0 < command.amount_cents <= state.refundable_cents:
        raise RefundExceedsCaptured(
            f"refund of {command.amount_cents} cents exceeds the {state.refundable_cents} "
            "cents left to refund"
        )
    return [
        PaymentRefunded(
            payment_id=state.payment_id,
            order_id=state.order_id,
            amount_cents=command.amount_cents,
            refund_id=command.refund_id,
            reason=command.reason,
        )
    ]


def evolve(state: Payment, event: PaymentEvent) -> Payment:
    """The state after ``event``. Pure; never raises for an event ``decide`` produced."""
    state = replace(state, version=state.version + 1)
    match event:
        case PaymentCreated():
            return replace(
                state,
                status=PaymentStatus.pending,
                order_id=event.order_id,
                amount_cents=event.amount_cents,
                currency=event.currency,
                payment_method=event.payment_method,
                provider=event.provider,
            )
        case PaymentProcessing():
            return replace(
                state,
                status=PaymentStatus.processing,
                provider_payment_id=event.provider_payment_id,
            )
        case PaymentCaptured():
            return replace(
                state, status=PaymentStatus.captured, provider_payment_id=event.provider_payment_id
            )
        case PaymentFailed():
            return replace(
                state,
                status=PaymentStatus.failed,
                failure_code=event.code,
                failure_reason=event.reason,
            )
        case PaymentRefunded():
            return replace(
                state,
                status=PaymentStatus.refunded,
                refunded_cents=state.refunded_cents + event.amount_cents,
                refund_ids=(*state.refund_ids, event.refund_id),
            )
        case PaymentOrderClosed():
            return replace(state, order_closed=True)
    return state  # an event type this version does not know changes nothing but the version


def fold(payment_id: str, events: list[PaymentEvent]) -> Payment:
    state = Payment(payment_id=payment_id)
    for event in events:
        state = evolve(state, event)
    return state


# --- what the charger should do next ------------------------------------------------------


class NextStep(StrEnum):
    charge = "charge"
    refund = "refund"


def next_step(state: Payment) -> NextStep | None:
    """Provider work this payment still needs: a charge, a refund of what is left, or none."""
    if state.status is PaymentStatus.pending:
        return NextStep.charge
    if state.order_closed and state.refundable_cents > 0:
        return NextStep.refund  # what is left after any refund an operator made
    return None


def refund_idempotency_key(state: Payment) -> str:
    """The provider key of the next refund: a retry of the same refund reuses it."""
    return f"{state.payment_id}:refund" + (f":{len(state.refund_ids)}" if state.refund_ids else "")
