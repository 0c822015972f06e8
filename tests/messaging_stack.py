"""Pytest plugin: the outside world customer messages go to (a sandbox of the session: its
SMTP server and SMS provider), and the notifier settings that point there.

The notifier's session process (``tests/notifier_stack.py``) is started with
``messaging_env(sandbox)``: the topology's links, so the tests wire the notifier to the
sandbox's SMTP port exactly as ``waybill up`` does, plus retries in fractions of a second.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from waybill.common import topics
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.orders import (
    Address,
    Customer,
    LineItem,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
)
from waybill.common.contracts.shipping import (
    ShipmentDelivered,
    ShipmentFailed,
    ShipmentInTransit,
    ShipmentReturned,
)
from waybill.common.envelope import EventEnvelope
from waybill.common.sealing import Sealer
from waybill.common.settings import WaybillSettings
from waybill.devstack.records import envelope, publish
from waybill.devstack.testing import Infra, ServiceProcess, start_service
from waybill.devstack.topology import link_env, service

# Message retries after 0.5-1 s (equal jitter), then 1-2 s; "delivered" held back 2 s, so a
# scheduled send is observable without slowing every other template.
FAST_MESSAGES_ENV = {
    "WAYBILL_NOTIFIER_MESSAGE_BACKOFF_S": "1",
    "WAYBILL_NOTIFIER_MESSAGE_BACKOFF_MAX_S": "2",
    "WAYBILL_NOTIFIER_TEMPLATE_DELAYS_S": "delivered=2",
}


def messaging_env(sandbox: ServiceProcess) -> dict[str, str]:
    """The notifier's settings for ``sandbox`` (its SMS URL and SMTP port) and fast retries."""
    wired = link_env([service("notifier")], {"sandbox": sandbox.url}.get, sandbox.listeners.get)
    return {**wired, **FAST_MESSAGES_ENV}


@pytest.fixture(scope="session")
def mail_sandbox(infra: Infra) -> Iterator[ServiceProcess]:
    """A sandbox of its own (fresh database) for the notifier's email and SMS."""
    env = {"WAYBILL_SANDBOX_DATABASE": infra.new_database("sandbox_mail")}
    sandbox = start_service(infra, "sandbox", extra_env=env)
    yield sandbox
    sandbox.stop()


@pytest.fixture
async def outside(mail_sandbox: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the sandbox (mailbox, SMS log, fault knobs); the knobs are reset after."""
    async with httpx.AsyncClient(base_url=mail_sandbox.url, timeout=30) as client:
        yield client
        await client.post("/admin/faults/reset")


# --- playing orders and shipping on Kafka for one customer's order --------------------------


@dataclass
class CustomerOrder:
    """One order of one customer (fresh addresses per test), and the events orders and shipping
    would publish about it."""

    tenant_id: str
    order_id: str = field(default_factory=lambda: f"ord_{uuid.uuid4().hex}")
    shipment_id: str = field(default_factory=lambda: f"shp_{uuid.uuid4().hex}")
    email: str = field(default_factory=lambda: f"c-{uuid.uuid4().hex[:12]}@example.com")
    phone: str | None = field(
        default_factory=lambda: "+1555" + "".join(random.choices("0123456789", k=7))
    )

    @property
    def customer(self) -> Customer:
        return Customer(id=f"cus_{self.order_id[4:16]}", email=self.email, phone=self.phone)

    def placed(self) -> EventEnvelope:
        return self._order(
            OrderPlaced(
                order_id=self.order_id,
                customer=self.customer,
                items=(LineItem(sku="SKU-1", quantity=1, unit_price_cents=1250),),
                currency="USD",
                total_cents=1250,
                shipping_address=ADDRESS,
                payment_method="pm_card_ok",
                expires_at=datetime.now(UTC) + timedelta(minutes=15),
            ),
            1,
        )

    def paid(self) -> EventEnvelope:
        return self._order(
            OrderPaid(
                order_id=self.order_id,
                payment_id="pay_1",
                customer=self.customer,
                shipping_address=ADDRESS,
            ),
            2,
        )

    def payment_failed(self) -> EventEnvelope:
        return self._order(
            OrderPaymentFailed(order_id=self.order_id, payment_id="pay_1", reason="card_declined"),
            2,
        )

    def in_transit(self, attempt: int, code: str) -> EventEnvelope:
        sealed = SEALER.seal(f"{self.shipment_id}:{code}")
        return self._shipment(
            ShipmentInTransit(
                shipment_id=self.shipment_id,
                order_id=self.order_id,
                agent_id="agt_1",
                attempt=attempt,
                delivery_code_sealed=sealed,
                delivery_code_hash=SEALER.keyed_hash(code, salt=self.shipment_id),
            )
        )

    def delivered(self) -> EventEnvelope:
        return self._shipment(
            ShipmentDelivered(
                shipment_id=self.shipment_id,
                order_id=self.order_id,
                agent_id="agt_1",
                delivered_at=datetime.now(UTC),
            )
        )

    def failed(self, reason: str = "RECIPIENT_ABSENT") -> EventEnvelope:
        return self._shipment(
            ShipmentFailed(
                shipment_id=self.shipment_id,
                order_id=self.order_id,
                agent_id="agt_1",
                reason=reason,
            )
        )

    def returned(self) -> EventEnvelope:
        return self._shipment(
            ShipmentReturned(shipment_id=self.shipment_id, order_id=self.order_id, agent_id="agt_1")
        )

    def _order(self, event: DomainEvent, sequence: int) -> EventEnvelope:
        return envelope(event, tenant_id=self.tenant_id, subject=self.order_id, sequence=sequence)

    def _shipment(self, event: DomainEvent) -> EventEnvelope:
        self._shipment_version += 1
        return envelope(
            event,
            tenant_id=self.tenant_id,
            subject=self.shipment_id,
            sequence=self._shipment_version,
        )

    _shipment_version: int = 0


ADDRESS = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
# The notifier's (and shipping's) default sealing secret: the tests seal codes as shipping does.
SEALER = Sealer(WaybillSettings().delivery_code_keys)


async def publish_events(infra: Infra, *records: EventEnvelope) -> None:
    """Each record to its producer's topic, in the order given."""
    for record in records:
        topic = (
            topics.SHIPPING_EVENTS if record.type.startswith("shipment.") else topics.ORDERS_EVENTS
        )
        await publish(infra.bootstrap_servers, topic, record)


async def mails_to(outside: httpx.AsyncClient, address: str) -> list[dict[str, Any]]:
    response = await outside.get("/mailbox", params={"to": address, "limit": 200})
    response.raise_for_status()
    return response.json()["items"]  # type: ignore[no-any-return]


async def texts_to(outside: httpx.AsyncClient, phone: str) -> list[dict[str, Any]]:
    response = await outside.get("/sms", params={"to": phone, "limit": 200})
    response.raise_for_status()
    return response.json()["items"]  # type: ignore[no-any-return]


async def notifications_of(client: httpx.AsyncClient, order_id: str) -> list[dict[str, Any]]:
    response = await client.get("/notifications", params={"order_id": order_id, "limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]
