"""``GET /api/overview``: a tenant's figures, each a GROUP BY over its read model.

Consumer lag, outbox backlog and breaker states are a later step of issue 11 (the monitor
reads them from Kafka and the services' metrics); service health is ``/api/health``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.monitor import capacity, repository
from waybill.monitor.tables import (
    notification_states,
    order_states,
    payment_states,
    shipment_states,
)

RECENT_EVENTS = 100
WINDOWS = {"last_hour": timedelta(hours=1), "last_24h": timedelta(hours=24)}


async def overview(engine: AsyncEngine, tenant_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:

        async def by_status(table: Any) -> dict[str, int]:
            rows = await repository.counts_by(conn, table, tenant_id, "status")
            return {row.status: _count(row) for row in rows if row.status is not None}

        payments = await repository.counts_by(conn, payment_states, tenant_id, "status", "provider")
        revenue = await repository.revenue(conn, tenant_id)
        webhooks = {
            name: _rate(await repository.webhook_outcomes(conn, tenant_id, window))
            for name, window in WINDOWS.items()
        }
        notifications = await repository.counts_by(
            conn, notification_states, tenant_id, "channel", "status"
        )
        letters = await repository.dead_letter_counts(conn, tenant_id)
        return {
            "orders": {"by_status": await by_status(order_states)},
            "shipments": {"by_status": await by_status(shipment_states)},
            "payments": {
                "by_status": _sum_by(payments, "status"),
                "by_provider": _nested(payments, "provider", "status"),
            },
            "revenue": {
                row.currency: {
                    "captured_cents": int(row.captured_cents),
                    "refunded_cents": int(row.refunded_cents),
                    "net_cents": int(row.captured_cents - row.refunded_cents),
                }
                for row in revenue
            },
            "webhook_deliveries": webhooks,
            "notifications": {"by_channel": _nested(notifications, "channel", "status")},
            "dead_letters": {
                "by_status": _sum_by(letters, "status"),
                "by_failure_type": _sum_by(letters, "failure_type"),
            },
            "capacity": await capacity.capacity(conn, tenant_id),
        }


async def recent(engine: AsyncEngine, tenant_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await repository.recent_events(conn, tenant_id, RECENT_EVENTS)
    return [dict(row._mapping) for row in rows]


def _rate(rows: Any) -> dict[str, Any]:
    counts = {row.status: _count(row) for row in rows}
    succeeded, failed = counts.get("succeeded", 0), counts.get("failed", 0)
    total = succeeded + failed
    return {
        "succeeded": succeeded,
        "failed": failed,
        "success_rate": round(succeeded / total, 4) if total else None,
    }


def _sum_by(rows: Any, column: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        name = row._mapping[column]
        if name is not None:
            totals[name] = totals.get(name, 0) + _count(row)
    return totals


def _nested(rows: Any, outer: str, inner: str) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for row in rows:
        first, second = row._mapping[outer], row._mapping[inner]
        if first is None or second is None:
            continue
        inner_counts = nested.setdefault(first, {})
        inner_counts[second] = inner_counts.get(second, 0) + _count(row)
    return nested


def _count(row: Any) -> int:
    # ``row.count`` would be the tuple's method: the column is read by name.
    return int(row._mapping["count"])
