"""Pytest plugin: the shipping service as a real process, and tenants that drive it.

Shipping's tests play orders and payments on Kafka (``waybill.devstack.records``): a paid
order is an ``order.paid`` record on the orders topic, exactly what the orders service
publishes, so shipping's consumer, dispatcher and API run as in production.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from waybill.common import topics
from waybill.common.contracts.orders import Address, Customer, OrderCancelled, OrderPaid
from waybill.common.db import create_databases
from waybill.common.sealing import Sealer
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish, read_records, wait_caught_up
from waybill.devstack.testing import Infra, ServiceProcess, Tenant, new_tenant, start_service
from waybill.shipping.codes import DeliveryCodes

# Dispatch turns and rechecks in test time; offers stay open long enough for a slow machine
# (a test that needs them to run out sets its tenant's own offer_ttl_s).
FAST_SHIPPING_ENV = {
    "WAYBILL_SHIPPING_DISPATCH_INTERVAL_S": "0.2",
    "WAYBILL_SHIPPING_WAITING_RECHECK_S": "1",
    "WAYBILL_SHIPPING_SLA_INTERVAL_S": "0.5",
    "WAYBILL_SHIPPING_OFFER_TTL_S": "60",
}
SHIPPING_GROUP = "shipping"


@pytest.fixture(scope="session")
def shipping_service(infra: Infra) -> Iterator[ServiceProcess]:
    from waybill.common.auth import ensure_auth_schema
    from waybill.common.settings import AUTH_DATABASE

    create_databases(infra.server_url, [AUTH_DATABASE])
    asyncio.run(ensure_auth_schema(infra.settings()))
    service = start_service(infra, "shipping", extra_env=FAST_SHIPPING_ENV)
    yield service
    service.stop()


@dataclass
class DeliveryAgent:
    id: str
    client: httpx.AsyncClient
    body: dict[str, Any] = field(default_factory=dict)

    async def offers(self) -> list[dict[str, Any]]:
        response = await self.client.get("/assignments", params={"status": "offered"})
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]

    async def offer_for(self, shipment_id: str, timeout_s: float = 30) -> dict[str, Any]:
        """The agent's open offer of ``shipment_id``, once it has one."""

        async def find() -> dict[str, Any] | None:
            return next((o for o in await self.offers() if o["shipment_id"] == shipment_id), None)

        offer = await eventually(find, timeout_s=timeout_s, what=f"{self.id} offered {shipment_id}")
        assert offer is not None
        return offer

    async def act(self, shipment_id: str, action: str, **body: Any) -> httpx.Response:
        return await self.client.post(f"/shipments/{shipment_id}/{action}", json=body or None)


@dataclass
class ShippingTenant(Tenant):
    infra: Infra | None = None
    agents: list[DeliveryAgent] = field(default_factory=list)

    async def add_agent(
        self,
        zips: Sequence[str] = ("12345",),
        *,
        capacity: int = 10,
        shifts: list[dict[str, Any]] | None = None,
        name: str | None = None,
    ) -> DeliveryAgent:
        body: dict[str, Any] = {
            "name": name or f"agent {len(self.agents) + 1}",
            "service_zip_codes": list(zips),
            "capacity": capacity,
        }
        if shifts is not None:
            body["shifts"] = shifts
        response = await self.admin.post("/agents", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        client = httpx.AsyncClient(
            base_url=str(self.admin.base_url),
            headers={"Authorization": f"Bearer {created['api_key']}"},
            timeout=30,
        )
        agent = DeliveryAgent(created["id"], client, created)
        self.agents.append(agent)
        return agent

    async def configure(self, **settings: Any) -> dict[str, Any]:
        response = await self.admin.put("/settings", json=settings)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def paid(
        self, order_id: str | None = None, *, postal_code: str = "12345"
    ) -> tuple[str, OrderPaid]:
        """An ``order.paid`` (v2) of a new order, as orders publishes it."""
        order_id = order_id or f"ord_{uuid.uuid4().hex}"
        return order_id, OrderPaid(
            order_id=order_id,
            payment_id=f"pay_{uuid.uuid4().hex}",
            customer=Customer(id="cus_1", email="ada@example.com", phone="+15551234567"),
            shipping_address=Address(
                line1="1 Main St", city="Springfield", postal_code=postal_code, country="US"
            ),
        )

    async def publish_orders(self, *events: Any, sequence: int = 2, **overrides: Any) -> None:
        assert self.infra is not None
        records = [
            envelope(e, tenant_id=self.id, subject=e.order_id, sequence=sequence, **overrides)
            for e in events
        ]
        await publish(self.infra.bootstrap_servers, topics.ORDERS_EVENTS, *records)

    async def order_paid(self, *, postal_code: str = "12345") -> str:
        """Publish a new order's ``order.paid`` and return its shipment's id once it exists."""
        order_id, paid = self.paid(postal_code=postal_code)
        await self.publish_orders(paid)
        return (await self.shipment_of(order_id))["id"]  # type: ignore[no-any-return]

    async def cancel_order(self, order_id: str) -> None:
        await self.publish_orders(OrderCancelled(order_id=order_id, reason="requested"), sequence=3)

    async def shipment_of(self, order_id: str, timeout_s: float = 30) -> dict[str, Any]:
        async def find() -> list[dict[str, Any]]:
            response = await self.admin.get("/shipments", params={"order_id": order_id})
            assert response.status_code == 200, response.text
            return response.json()["items"]  # type: ignore[no-any-return]

        items = await eventually(find, timeout_s=timeout_s, what=f"shipment of {order_id}")
        return items[0]

    async def shipment(self, shipment_id: str) -> dict[str, Any]:
        response = await self.admin.get(f"/shipments/{shipment_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def wait_shipment(
        self, shipment_id: str, until: Any, *, timeout_s: float = 30, what: str = "shipment"
    ) -> dict[str, Any]:
        return await eventually(
            lambda: self.shipment(shipment_id), until=until, timeout_s=timeout_s, what=what
        )

    async def events(self, shipment_id: str) -> list[dict[str, Any]]:
        response = await self.admin.get(f"/shipments/{shipment_id}/events", params={"limit": 200})
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]

    async def delivery_code(self, shipment_id: str, *, after: int = 0) -> str:
        """The latest delivery code of the shipment, as the notifier gets it: sealed in the
        shipment's records on Kafka, unsealed with the shared key (``after``: only records
        past this stream version)."""
        assert self.infra is not None
        sealed = await eventually(
            lambda: _sealed_code(self.infra, shipment_id, after),  # type: ignore[arg-type]
            timeout_s=30,
            what=f"a delivery code of {shipment_id} on Kafka",
        )
        codes = DeliveryCodes(Sealer(self.infra.settings().delivery_code_keys))
        return codes.unseal(shipment_id, sealed)

    async def consumed(self) -> None:
        """Until shipping's consumer has committed past everything on the orders topic."""
        assert self.infra is not None
        await wait_caught_up(self.infra.bootstrap_servers, SHIPPING_GROUP, topics.ORDERS_EVENTS)

    async def aclose(self) -> None:
        for agent in self.agents:
            await agent.client.aclose()
        await super().aclose()


async def _sealed_code(infra: Infra, shipment_id: str, after: int) -> str | None:
    """The sealed code of the newest record of the shipment past version ``after``."""
    found = await read_records(
        infra.bootstrap_servers,
        topics.SHIPPING_EVENTS,
        lambda r: (
            r.key == shipment_id.encode()
            and int(r.headers["ce_sequence"]) > after
            and "delivery_code_sealed" in r.data
        ),
    )
    newest = max(found, key=lambda r: int(r.headers["ce_sequence"]), default=None)
    return newest.data["delivery_code_sealed"] if newest else None


@pytest.fixture
async def shipper(infra: Infra, shipping_service: ServiceProcess) -> AsyncIterator[ShippingTenant]:
    """A fresh tenant on the shipping service."""
    tenant = await new_tenant(infra, shipping_service.url)
    shipping = ShippingTenant(tenant.id, tenant.admin, tenant.service, tenant.agent, infra=infra)
    yield shipping
    await shipping.aclose()
