"""Saga latency: how long after it was placed an order was paid, shipped, delivered.

``waybill_order_saga_duration_seconds{service, step}`` gets one observation per transition
that completes a step of the saga (``STEPS``), measured from the order's placed time (its
projection row's ``created_at``, written with ``order.placed``) to the handler's clock when it
decided the transition. The system overview's p50/p95/p99 come from it.

Observed when the transaction that moved the order commits, not when the decider ran: a
consumer batch that fails is rolled back and its records applied again one by one
(``waybill.common.consumer.processor``), and a version conflict is tried again
(``retry_on_conflict``), so an observation at decide time would count one transition twice, or
one that never happened. The pending observations ride on the connection (``Connection.info``,
the pooled DBAPI connection's dict) and the engine's ``commit`` event observes them, its
``rollback`` event drops them. SQLAlchemy fires ``commit`` just before the database confirms
it: a COMMIT that then fails (the server gone at that very moment) would count one transition
that did not happen, which a latency histogram can afford.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.orders.domain.order import OrderStatus

SERVICE = "orders"
_PENDING = "waybill_orders_saga_observations"

# The step each first arrival completes. Sent out again after a return (returned -> shipped)
# is not the order's shipping time, so it is not a step.
STEPS: dict[tuple[OrderStatus, OrderStatus], str] = {
    (OrderStatus.pending_payment, OrderStatus.paid): "paid",
    (OrderStatus.pending_payment, OrderStatus.payment_failed): "payment_failed",
    (OrderStatus.paid, OrderStatus.shipped): "shipped",
    (OrderStatus.shipped, OrderStatus.delivered): "delivered",
}
# Paid within seconds of being placed, shipped and delivered within hours to days (people move
# the parcel): 100 ms to a week.
SAGA_BUCKETS = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 2 * 86400.0, 7 * 86400.0,
)  # fmt: skip
SAGA_DURATION = Histogram(
    "waybill_order_saga_duration_seconds",
    "Time from an order's placement to each step of its saga (paid, payment_failed, shipped, "
    "delivered), observed when the transition commits.",
    ["service", "step"],
    buckets=SAGA_BUCKETS,
)


def step_of(before: OrderStatus, after: OrderStatus) -> str | None:
    """The saga step a transition completes, if any."""
    return STEPS.get((before, after))


def observe_at_commit(conn: AsyncConnection, step: str, seconds: float) -> None:
    """Observe ``seconds`` for ``step`` once ``conn``'s transaction commits (never if it rolls
    back). The engine must be watched (``watch_commits``)."""
    conn.sync_connection.info.setdefault(_PENDING, []).append((step, seconds))  # type: ignore[union-attr]


def watch_commits(engine: AsyncEngine) -> None:
    """Hook the engine's commit and rollback events (once, however often it is called)."""
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "commit", _observe_pending):
        event.listen(sync_engine, "commit", _observe_pending)
        event.listen(sync_engine, "rollback", _drop_pending)


def _observe_pending(connection: Any) -> None:
    for step, seconds in connection.info.pop(_PENDING, ()):
        SAGA_DURATION.labels(SERVICE, step).observe(max(seconds, 0.0))


def _drop_pending(connection: Any) -> None:
    connection.info.pop(_PENDING, None)
