"""Order events in: ``order.placed`` opens the order's payment, ``order.cancelled`` and
``order.expired`` close it (a captured payment is then refunded). Thin: translate, call.

The handlers run inside the consumer's inbox transaction; the provider is called only after
that transaction commits. ``AfterCommitEngine`` is how we learn that it did: the consumer
runtime opens its transactions with ``engine.begin()``, and ours runs the callbacks a handler
staged (``after_commit``) once the commit returned -- never after a rollback, so a batch that
is rolled back and re-applied record by record queues each payment once it really exists.
A payment opened here is queued with the state that transaction gave it (``Claimed``), so the
charger need not read it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Protocol

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.consumer.processor import Handler
from waybill.common.contracts.orders import OrderCancelled, OrderExpired, OrderPlaced
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore import Caller
from waybill.common.registry import EventRegistry
from waybill.payments.handlers import Claimed, PaymentHandlers

log = structlog.get_logger(__name__)
GROUP = "payments"
CONSUMED = (OrderPlaced, OrderCancelled, OrderExpired)
_AFTER_COMMIT = "waybill_payments_after_commit"


def consumed_registry() -> EventRegistry:
    """Only the order events payments acts on; the runtime skips every other type cheaply."""
    registry = EventRegistry()
    for model in CONSUMED:
        registry.register(model.event_type, model, version=model.schema_version)
    return registry


def after_commit(conn: AsyncConnection, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``conn``'s transaction has committed (if it is an
    ``AfterCommitEngine`` transaction); dropped if it rolls back."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(callback)


class AfterCommitEngine(AsyncEngine):
    """The service's engine (same pool) whose ``begin()`` runs staged after-commit callbacks."""

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        staged: list[Callable[[], None]] = []
        async with super().begin() as conn:
            conn.info[_AFTER_COMMIT] = staged
            try:
                yield conn
            finally:
                # conn.info lives as long as the pooled connection: never leak into its next use.
                conn.info.pop(_AFTER_COMMIT, None)
        for callback in staged:  # reached only when the commit above succeeded
            callback()


class Submit(Protocol):
    """Queue provider work for a payment (``Charger.submit``)."""

    def __call__(self, payment_id: str, claimed: Claimed | None = None, /) -> None: ...


def order_event_handler(handlers: PaymentHandlers, submit: Submit) -> Handler:
    """The consumer handler: ``submit(payment_id[, claimed])`` queues provider work after the
    commit."""

    async def handle(conn: AsyncConnection, envelope: EventEnvelope, event: BaseModel) -> None:
        caller = Caller(
            tenant_id=envelope.tenant_id,
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.id),
            traceparent=envelope.traceparent,
        )
        if isinstance(event, OrderPlaced):
            opened = await handlers.open_payment(conn, caller, event)
            if opened is not None:
                after_commit(conn, partial(submit, opened.state.payment_id, opened))
        elif isinstance(event, OrderCancelled | OrderExpired):
            reason = "cancelled" if isinstance(event, OrderCancelled) else "expired"
            recorded = await handlers.close_order(conn, caller, event.order_id, reason)
            if recorded is not None and recorded.newly_needs_provider:
                after_commit(conn, partial(submit, recorded.after.payment_id))

    return handle
