"""Helpers for the cross-service saga tests: place orders, wait for outcomes, read the ledger."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import httpx
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import Saga, order_body

from waybill.devstack.testing import eventually

SETTLED = {"paid", "payment_failed"}


async def place_orders(
    tenant: Tenant, count: int, *, sku: str, payment_method: str = "pm_card_ok"
) -> list[str]:
    responses = await asyncio.gather(
        *(
            tenant.service.post("/orders", json=order_body(sku, payment_method=payment_method))
            for _ in range(count)
        )
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses][:3]
    return [r.json()["id"] for r in responses]


async def wait_orders(
    tenant: Tenant, order_ids: Iterable[str], *, statuses: set[str], timeout_s: float
) -> dict[str, str]:
    """Poll until every order is in one of ``statuses``; returns the last status of each,
    settled or not: the callers assert on them (some expect nothing to settle in the time)."""
    pending = set(order_ids)
    seen: dict[str, str] = {}

    async def poll() -> dict[str, str]:
        for order_id in list(pending):
            status = (await tenant.service.get(f"/orders/{order_id}")).json()["status"]
            seen[order_id] = status
            if status in statuses:
                pending.discard(order_id)
        return seen

    with contextlib.suppress(AssertionError):  # timed out: report what was seen
        await eventually(poll, until=lambda _: not pending, timeout_s=timeout_s, interval_s=0.25)
    return seen


async def charges_per_order(saga: Saga, order_ids: Iterable[str]) -> dict[str, int]:
    async with saga.sandbox_client() as sandbox:
        counts = {}
        for order_id in order_ids:
            ledger = (
                await sandbox.get(
                    "/ledger", params={"metadata_key": "order_id", "metadata_value": order_id}
                )
            ).json()
            counts[order_id] = len(ledger["charges"])
        return counts


async def set_faults(saga: Saga, **faults: Any) -> None:
    async with saga.sandbox_client() as sandbox:
        response = await sandbox.put("/admin/faults", json=faults)
        assert response.status_code == 200, response.text


async def reset_faults(saga: Saga) -> None:
    async with saga.sandbox_client() as sandbox:
        (await sandbox.post("/admin/faults/reset")).raise_for_status()


async def payment_of(tenant: Tenant, saga: Saga, order_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=saga.payments.url, headers=tenant.service.headers) as c:
        items = (await c.get("/payments", params={"order_id": order_id})).json()["items"]
        assert len(items) == 1, items
        return items[0]


async def breaker_state(saga: Saga) -> float | None:
    """The payments service's provider breaker: 0 closed, 1 half-open, 2 open."""
    async with httpx.AsyncClient(base_url=saga.payments.url) as c:
        text = (await c.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("waybill_circuit_breaker_state{"):
            return float(line.rsplit(" ", 1)[1])
    return None
