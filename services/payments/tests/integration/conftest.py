"""Fixtures for the payments tests: the ``saga`` processes (orders + payments + sandbox, from
the waybill.common.testing plugin), a fresh tenant with clients on orders and payments, and
the sandbox with its fault knobs reset after every test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest

from waybill.common.testing import Saga, Tenant, new_tenant, order_body

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 20, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Shop:
    """One fresh tenant: clients on orders (``tenant``), on payments, and on the sandbox."""

    tenant: Tenant
    payments: httpx.AsyncClient  # service key
    payments_admin: httpx.AsyncClient
    sandbox: httpx.AsyncClient

    async def place(self, payment_method: str, quantity: int = 1) -> dict[str, Any]:
        sku = f"PAY-{uuid.uuid4().hex[:8]}"
        await self.tenant.stock(sku, 10)
        response = await self.tenant.service.post(
            "/orders", json=order_body(sku, quantity, payment_method=payment_method)
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def payment_of(self, order_id: str) -> dict[str, Any] | None:
        response = await self.payments.get("/payments", params={"order_id": order_id})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert len(items) <= 1, items
        return items[0] if items else None

    async def settled(self, order_id: str, status: str, timeout_s: float = 20) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            payment = await self.payment_of(order_id)
            return payment if payment is not None and payment["status"] == status else None

        return await wait_for(probe, timeout_s=timeout_s, what=f"payment of {order_id} {status}")

    async def ledger(self, order_id: str) -> dict[str, list[dict[str, Any]]]:
        response = await self.sandbox.get(
            "/ledger", params={"metadata_key": "order_id", "metadata_value": order_id}
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def faults(self, **knobs: float) -> None:
        response = await self.sandbox.put("/admin/faults", json=knobs)
        assert response.status_code == 200, response.text


@pytest.fixture
async def shop(infra, saga: Saga) -> AsyncIterator[Shop]:
    tenant = await new_tenant(infra, saga.orders.url)
    payments = httpx.AsyncClient(base_url=saga.payments.url, headers=tenant.service.headers)
    admin = httpx.AsyncClient(base_url=saga.payments.url, headers=tenant.admin.headers)
    sandbox = saga.sandbox_client()
    try:
        yield Shop(tenant, payments, admin, sandbox)
    finally:
        # Other tests share the sandbox: whatever a test turned on is turned off again.
        await sandbox.post("/admin/faults/reset")
        for client in (payments, admin, sandbox):
            await client.aclose()
        await tenant.aclose()
