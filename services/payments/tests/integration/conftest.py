"""Fixtures for the payments tests: the ``saga`` processes (orders + payments + sandbox, from
tests/saga_stack.py), a fresh tenant with clients on orders and payments, and
the sandbox with its fault knobs reset after every test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import Saga, order_body, orders_tenant

from waybill.devstack.testing import eventually


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

        return await eventually(
            probe, timeout_s=timeout_s, interval_s=0.05, what=f"payment of {order_id} {status}"
        )

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
    tenant = await orders_tenant(infra, saga.orders.url)
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
