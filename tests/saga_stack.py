"""Pytest plugin: the services under test as real processes (orders alone, or the whole saga).

Loaded from the root ``conftest.py`` (beside the generic ``waybill.devstack.testing``) because
three test trees use it: services/orders/tests (``orders_service``, ``tenant``),
services/payments/tests (``saga``) and the cross-service tests here. What is specific to our
services lives here, not in the dev package: order bodies, stocking a sku, the saga's knobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from waybill.common.db import create_databases
from waybill.devstack.infra import free_port
from waybill.devstack.testing import Infra, ServiceProcess, Tenant, new_tenant, start_service
from waybill.devstack.topology import SERVICES, link_env


def order_body(sku: str = "SKU-1", quantity: int = 1, **overrides: object) -> dict[str, object]:
    """A valid ``POST /orders`` body (CONTRACT.md § orders) with optional overrides."""
    body: dict[str, object] = {
        "customer": {"id": "cus_1", "email": "ada@example.com", "phone": "+15551234567"},
        "items": [{"sku": sku, "quantity": quantity, "unit_price_cents": 1250}],
        "currency": "USD",
        "shipping_address": {
            "line1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
        "payment_method": "pm_card_ok",
    }
    body.update(overrides)
    return body


@dataclass
class OrdersTenant(Tenant):
    """A fresh tenant whose clients talk to the orders service (which owns the stock)."""

    async def stock(self, sku: str, available: int) -> None:
        response = await self.admin.put(f"/inventory/{sku}", json={"available": available})
        assert response.status_code == 200, response.text


async def orders_tenant(infra: Infra, orders_url: str) -> OrdersTenant:
    tenant = await new_tenant(infra, orders_url)
    return OrdersTenant(tenant.id, tenant.admin, tenant.service, tenant.agent)


@pytest.fixture(scope="session")
def orders_service(infra: Infra) -> Iterator[ServiceProcess]:
    """The orders service as a real process on the session's PostgreSQL and Kafka."""
    from waybill.common.auth import ensure_auth_schema
    from waybill.common.settings import AUTH_DATABASE

    create_databases(infra.server_url, [AUTH_DATABASE])
    asyncio.run(ensure_auth_schema(infra.settings()))
    service = start_service(infra, "orders")
    yield service
    service.process.stop()


@pytest.fixture
async def tenant(infra: Infra, orders_service: ServiceProcess) -> AsyncIterator[OrdersTenant]:
    tenant = await orders_tenant(infra, orders_service.url)
    yield tenant
    await tenant.aclose()


# Knobs that make the saga settle in test time (production defaults are seconds to minutes).
FAST_SAGA_ENV = {
    "WAYBILL_PAYMENTS_RETRY_BASE_S": "0.05",
    "WAYBILL_PAYMENTS_RETRY_MAX_S": "0.5",
    "WAYBILL_PAYMENTS_RATE_LIMIT_BASE_S": "0.1",
    "WAYBILL_PAYMENTS_RATE_LIMIT_MAX_S": "3",
    "WAYBILL_PAYMENTS_BREAKER_RESET_S": "1",
    "WAYBILL_PAYMENTS_PROVIDER_TIMEOUT_S": "1",
    "WAYBILL_PAYMENTS_SYNC_INTERVAL_S": "1",
    "WAYBILL_PAYMENTS_SYNC_THRESHOLD_S": "1",
    "WAYBILL_PAYMENTS_CLAIM_LEASE_S": "3",
    "WAYBILL_PAYMENTS_SWEEP_INTERVAL_S": "0.5",
    "WAYBILL_SANDBOX_ASYNC_SETTLE_S": "0.3",
}


@dataclass
class Saga:
    """orders + payments + the sandbox provider, each a real process, wired together."""

    orders: ServiceProcess
    payments: ServiceProcess
    sandbox: ServiceProcess

    def sandbox_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.sandbox.url, timeout=30)


@pytest.fixture(scope="session")
def saga(infra: Infra, orders_service: ServiceProcess) -> Iterator[Saga]:
    """The rest of the topology beside ``orders_service``, wired as ``waybill up`` wires it."""
    ports = {"sandbox": free_port(), "payments": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    urls["orders"] = orders_service.url
    env = {**FAST_SAGA_ENV, **link_env(SERVICES, urls.get)}
    sandbox = start_service(infra, "sandbox", port=ports["sandbox"], extra_env=env)
    try:
        payments = start_service(infra, "payments", port=ports["payments"], extra_env=env)
    except BaseException:
        sandbox.stop()
        raise
    yield Saga(orders=orders_service, payments=payments, sandbox=sandbox)
    payments.stop()
    sandbox.stop()
