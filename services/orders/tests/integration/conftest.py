"""The orders service as a real process on the session's PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from waybill.common.auth import ensure_auth_schema, issue_key
from waybill.common.infra.postgres import create_databases
from waybill.common.settings import AUTH_DATABASE
from waybill.common.testing import Infra, ServiceProcess, start_service


@pytest.fixture(scope="session")
def orders_service(infra: Infra) -> Iterator[ServiceProcess]:
    create_databases(infra.server_url, [AUTH_DATABASE])
    asyncio.run(ensure_auth_schema(infra.settings()))
    service = start_service(infra, "waybill.orders", "WAYBILL_ORDERS_PORT")
    yield service
    service.process.stop()


@dataclass
class Tenant:
    """A fresh tenant with one key per role, and clients bound to the orders service."""

    id: str
    admin: httpx.AsyncClient
    service: httpx.AsyncClient
    agent: httpx.AsyncClient

    async def stock(self, sku: str, available: int) -> None:
        response = await self.admin.put(f"/inventory/{sku}", json={"available": available})
        assert response.status_code == 200, response.text


@pytest.fixture
async def tenant(infra: Infra, orders_service: ServiceProcess) -> Tenant:
    tenant_id = f"t_{uuid.uuid4().hex[:10]}"
    settings = infra.settings()
    clients = {}
    for role in ("admin", "service", "agent"):
        issued = await issue_key(settings, tenant_id=tenant_id, role=role)
        clients[role] = httpx.AsyncClient(
            base_url=orders_service.url,
            headers={"Authorization": f"Bearer {issued.key}"},
            timeout=30,
        )
    return Tenant(id=tenant_id, **clients)


def order_body(sku: str = "SKU-1", quantity: int = 1, **overrides: object) -> dict[str, object]:
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
