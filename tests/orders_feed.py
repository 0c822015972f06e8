"""Feeding the orders service the events it consumes, as payments and shipping would publish
them, and reading what came of it: the order's status, how far the ``orders`` consumer group
has read a topic, and the records of a topic (orders' own events, the dead letters).

Shared by orders' integration tests (payment outcomes, shipment news, ``order.paid`` v2); the
records go straight to Kafka, so orders is tested against the broker, not a stand-in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.payments import PaymentCaptured
from waybill.common.envelope import EventEnvelope
from waybill.devstack import records as records_
from waybill.devstack.records import Record
from waybill.devstack.testing import Infra, eventually

ORDERS_GROUP = "orders"


def envelope(
    tenant: Tenant, event: DomainEvent, *, subject: str, sequence: int = 1
) -> EventEnvelope:
    """``event`` as its producing service publishes it: in ``subject``'s stream, at
    ``sequence``, with the schema version its class declares."""
    return records_.envelope(event, tenant_id=tenant.id, subject=subject, sequence=sequence)


async def publish(infra: Infra, topic: str, *envelopes: EventEnvelope) -> None:
    """Each envelope as one record on ``topic``, in order (one stream: one partition)."""
    await records_.publish(infra.bootstrap_servers, topic, *envelopes)


async def wait_status(tenant: Tenant, order_id: str, wanted: str, timeout_s: float = 60) -> str:
    async def status() -> str:
        return (await tenant.service.get(f"/orders/{order_id}")).json()["status"]  # type: ignore[no-any-return]

    return await eventually(
        status,
        until=lambda current: current == wanted,
        timeout_s=timeout_s,
        what=f"order {order_id} {wanted}",
    )


async def wait_consumed(infra: Infra, topic: str, what: str, timeout_s: float = 60) -> None:
    """Until the orders consumer group has committed past every record on ``topic``."""
    await records_.wait_caught_up(infra.bootstrap_servers, ORDERS_GROUP, topic, timeout_s=timeout_s)


async def records(
    infra: Infra, topic: str, where: Callable[[dict[str, str]], bool], timeout_s: float = 60
) -> list[Record]:
    """The records on ``topic`` now whose headers match."""
    return await records_.read_records(
        infra.bootstrap_servers, topic, lambda r: where(r.headers), timeout_s=timeout_s
    )


def captured_for(order: dict[str, Any]) -> PaymentCaptured:
    """What payments reports when the order's whole total is captured."""
    return PaymentCaptured(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        amount_cents=order["total_cents"],
        currency="USD",
        provider="sandbox",
        provider_payment_id=f"pi_{uuid.uuid4().hex[:12]}",
    )


async def paid_order(tenant: Tenant, infra: Infra, sku: str) -> dict[str, Any]:
    """A placed order whose payment payments reported captured; returns it once ``paid``."""
    await tenant.stock(sku, 5)
    response = await tenant.service.post("/orders", json=order_body(sku))
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    captured = captured_for(order)
    await publish(
        infra, topics.PAYMENTS_EVENTS, envelope(tenant, captured, subject=captured.payment_id)
    )
    await wait_status(tenant, order["id"], "paid")
    return order
