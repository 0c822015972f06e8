"""What the payments service consumes: the one table, event class -> handler.

``order.placed`` opens the order's payment; ``order.cancelled`` and ``order.expired`` close it
(a captured payment is then refunded). Every other orders event is not subscribed, so the
consumer skips it by its ``ce_type`` header without decoding it or opening a transaction. The
registry the consumer decodes with, its topics and the AsyncAPI subscribe side all come from
this table (``waybill.common.consumer.subscriptions``).

Handlers are thin: translate, call. They run inside the consumer's inbox transaction and queue
provider work with ``after_commit`` (see ``after_commit``); a payment opened here is queued
with the state that transaction gave it (``Claimed``), so the charger need not read it back.
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.contracts.orders import OrderCancelled, OrderExpired, OrderPlaced
from waybill.common.eventstore import Caller
from waybill.payments.after_commit import after_commit
from waybill.payments.handlers import Claimed, PaymentHandlers

GROUP = "payments"


class Submit(Protocol):
    """Queue provider work for a payment (``Charger.submit``)."""

    def __call__(self, payment_id: str, claimed: Claimed | None = None, /) -> None: ...


def subscriptions(handlers: PaymentHandlers, submit: Submit) -> Subscriptions:
    """The table; ``submit(payment_id[, claimed])`` queues provider work after the commit."""

    async def open_payment(conn: AsyncConnection, caller: Caller, event: OrderPlaced) -> None:
        opened = await handlers.open_payment(conn, caller, event)
        if opened is not None:
            after_commit(conn, partial(submit, opened.state.payment_id, opened))

    async def close_order(
        conn: AsyncConnection, caller: Caller, event: OrderCancelled | OrderExpired
    ) -> None:
        reason = "cancelled" if isinstance(event, OrderCancelled) else "expired"
        recorded = await handlers.close_order(conn, caller, event.order_id, reason)
        if recorded is not None and recorded.newly_needs_provider:
            after_commit(conn, partial(submit, recorded.after.payment_id))

    return Subscriptions(
        GROUP, {OrderPlaced: open_payment, OrderCancelled: close_order, OrderExpired: close_order}
    )
