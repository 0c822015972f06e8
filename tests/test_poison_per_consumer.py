"""A poison event in each consumer group of the real stack (``waybill up``, the test poison
switch on): dead-lettered by that group alone and visible in the monitor within seconds with
its failure type; "fixing the cause" is an edited retry without the poison key, which reaches
that group only (its retry topic), resolves the dead letter, and is applied exactly once.

Each group gets an event it consumes whose effect its own API shows, on a fresh tenant:

- ``orders``: a captured payment for an order still waiting for its payment -> ``order.paid``;
- ``payments``: the cancellation of a paid order -> its payment refunded;
- ``shipping``: a paid order -> a shipment;
- ``notifier``: a paid order -> the customer's ``payment_received`` email;
- ``monitor``: a paid order -> the event in the monitor's feed.

Every other group applies the same event as usual when it first arrives; none of them ever
reads the retried record (no committed offset on the group's retry topic but its own).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from tests.saga_stack import order_body
from tests.up_stack import WaybillUp

from waybill.common import topics
from waybill.common.consumer.poison import POISON_KEY
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.orders import Address, Customer, OrderCancelled, OrderPaid
from waybill.common.contracts.payments import PaymentCaptured
from waybill.common.envelope import EventEnvelope
from waybill.devstack.eventually import eventually
from waybill.devstack.records import envelope, publish, wait_caught_up

pytestmark = pytest.mark.infra

SEEN_WITHIN_S = 20.0  # "within seconds": generous for a shared 2-core machine


@dataclass
class Shop:
    """A fresh tenant on the stack: one admin client per service."""

    stack: WaybillUp
    tenant_id: str
    clients: dict[str, httpx.AsyncClient]
    service_key: str

    def __getitem__(self, service: str) -> httpx.AsyncClient:
        return self.clients[service]

    async def place(self, payment_method: str) -> str:
        sku = f"SKU-{uuid.uuid4().hex[:8]}"
        stocked = await self["orders"].put(f"/inventory/{sku}", json={"available": 5})
        assert stocked.status_code == 200, stocked.text
        placed = await self["orders"].post(
            "/orders",
            json=order_body(sku, payment_method=payment_method),
            headers={"Authorization": f"Bearer {self.service_key}"},
        )
        assert placed.status_code == 201, placed.text
        return str(placed.json()["id"])

    async def order_status(self, order_id: str) -> str:
        answer = await self["orders"].get(f"/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    async def items(self, service: str, path: str, **params: str) -> list[dict[str, Any]]:
        answer = await self[service].get(path, params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])


@pytest.fixture
async def shop(stack: WaybillUp) -> AsyncIterator[Shop]:
    tenant_id = f"t_{uuid.uuid4().hex[:12]}"
    admin = await stack.new_key(tenant_id, "admin")
    service_key = await stack.new_key(tenant_id, "service")
    names = ("orders", "payments", "shipping", "notifier", "monitor")
    clients = {
        name: httpx.AsyncClient(
            base_url=stack.url(name), headers={"Authorization": f"Bearer {admin}"}, timeout=15
        )
        for name in names
    }
    yield Shop(stack, tenant_id, clients, service_key)
    for client in clients.values():
        await client.aclose()


def poisoned(
    event: DomainEvent, tenant_id: str, subject: str, sequence: int, group: str
) -> EventEnvelope:
    data = {**event.model_dump(mode="json"), POISON_KEY: group}
    return envelope(event, tenant_id=tenant_id, subject=subject, sequence=sequence, data=data)


def paid(order_id: str) -> OrderPaid:
    return OrderPaid(
        order_id=order_id,
        payment_id=f"pay_{uuid.uuid4().hex}",
        customer=Customer(id="cus_1", email=f"{order_id}@example.com", phone="+15551234567"),
        shipping_address=Address(
            line1="1 Main St", city="Springfield", postal_code="12345", country="US"
        ),
    )


Effect = Callable[[], Awaitable[int]]


@dataclass
class Case:
    record: EventEnvelope
    topic: str
    effect: Effect  # how many times the group's effect of the record is visible


async def orders_case(shop: Shop) -> Case:
    # The provider never calls back for this token, and payment sync asks only after 30 s: the
    # order waits for its payment while the test runs.
    order_id = await shop.place("pm_card_async_silent")
    assert await shop.order_status(order_id) == "pending_payment"
    payment_id = f"pay_{uuid.uuid4().hex}"
    event = PaymentCaptured(
        payment_id=payment_id,
        order_id=order_id,
        amount_cents=1250,
        currency="USD",
        provider="sandbox",
        provider_payment_id=f"pi_{uuid.uuid4().hex[:12]}",
    )

    async def effect() -> int:
        events = await shop.items("orders", f"/orders/{order_id}/events")
        return sum(
            1 for e in events if e["type"] == "order.paid" and e["data"]["payment_id"] == payment_id
        )

    record = poisoned(event, shop.tenant_id, payment_id, 3, "orders")
    return Case(record, topics.events_topic("payments"), effect)


async def payments_case(shop: Shop) -> Case:
    order_id = await shop.place("pm_card_ok")
    await eventually(
        lambda: shop.order_status(order_id),
        until=lambda status: status == "paid",
        timeout_s=60,
        what=f"order {order_id} to be paid",
    )

    async def effect() -> int:
        payments = await shop.items("payments", "/payments", order_id=order_id)
        return sum(1 for p in payments if p["status"] == "refunded")

    event = OrderCancelled(order_id=order_id, reason="customer asked")
    record = poisoned(event, shop.tenant_id, order_id, 3, "payments")
    return Case(record, topics.events_topic("orders"), effect)


async def shipping_case(shop: Shop) -> Case:
    order_id = f"ord_{uuid.uuid4().hex}"

    async def effect() -> int:
        return len(await shop.items("shipping", "/shipments", order_id=order_id))

    record = poisoned(paid(order_id), shop.tenant_id, order_id, 2, "shipping")
    return Case(record, topics.events_topic("orders"), effect)


async def notifier_case(shop: Shop) -> Case:
    order_id = f"ord_{uuid.uuid4().hex}"

    async def effect() -> int:
        sent = await shop.items("notifier", "/notifications", order_id=order_id)
        return sum(
            1 for n in sent if n["template"] == "payment_received" and n["channel"] == "email"
        )

    record = poisoned(paid(order_id), shop.tenant_id, order_id, 2, "notifier")
    return Case(record, topics.events_topic("orders"), effect)


async def monitor_case(shop: Shop) -> Case:
    order_id = f"ord_{uuid.uuid4().hex}"
    record = poisoned(paid(order_id), shop.tenant_id, order_id, 2, "monitor")

    async def effect() -> int:
        feed = await shop.items("monitor", "/api/events")
        return sum(1 for e in feed if e["event_id"] == str(record.id))

    return Case(record, topics.events_topic("orders"), effect)


CASES: dict[str, Callable[[Shop], Awaitable[Case]]] = {
    "orders": orders_case,
    "payments": payments_case,
    "shipping": shipping_case,
    "notifier": notifier_case,
    "monitor": monitor_case,
}


async def committed_on(bootstrap: str, topic: str) -> dict[str, int]:
    """Every consumer group's committed offsets on ``topic`` (summed over its partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups()]
        seen: dict[str, int] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            mine = [meta.offset for tp, meta in offsets.items() if tp.topic == topic]
            if mine:
                seen[group] = sum(max(o, 0) for o in mine)
        return seen
    finally:
        await admin.close()


@pytest.mark.parametrize("group", list(CASES))
async def test_a_poison_event_is_dead_lettered_by_its_group_and_its_edited_retry_reaches_only_it(
    shop: Shop, group: str
) -> None:
    case = await CASES[group](shop)
    bootstrap = shop.stack.record().bootstrap_servers
    sent_at = datetime.now(UTC)
    started = time.monotonic()
    await publish(bootstrap, case.topic, case.record)

    letters = await eventually(
        lambda: shop.items("monitor", "/api/dlq", consumer_group=group),
        until=lambda items: any(i["event_id"] == str(case.record.id) for i in items),
        timeout_s=SEEN_WITHIN_S,
        what=f"the {group} group's dead letter in the monitor",
    )
    visible_s = time.monotonic() - started
    assert len(letters) == 1, letters  # no other record of this tenant failed in the group
    letter = letters[0]
    assert letter["kind"] == "consumer" and letter["status"] == "pending"
    assert letter["service"] == group
    assert letter["failure_type"] == "business_logic_violation"
    assert letter["remediation"] == "escalate_to_admin"
    assert letter["exception_type"].endswith("PoisonEvent")
    assert datetime.fromisoformat(letter["last_failed_at"]) - sent_at < timedelta(
        seconds=SEEN_WITHIN_S
    )
    # Only this group failed it: the others applied it (or, like orders, do not consume it).
    every = await shop.items("monitor", "/api/dlq")
    assert [i["consumer_group"] for i in every] == [group]
    assert await case.effect() == 0

    retry_topic = topics.retry_topic(group)
    before = await committed_on(bootstrap, retry_topic)
    fixed = {k: v for k, v in case.record.data.items() if k != POISON_KEY}
    retried = time.monotonic()
    answer = await shop["monitor"].post(f"/api/dlq/{letter['id']}/retry", json={"data": fixed})
    assert answer.status_code == 200, answer.text

    detail = await eventually(
        lambda: shop["monitor"].get(f"/api/dlq/{letter['id']}"),
        until=lambda r: r.json()["status"] == "resolved",
        timeout_s=SEEN_WITHIN_S,
        what=f"the {group} dead letter to be resolved",
    )
    print(
        f"{group}: dead letter visible {visible_s:.2f} s after the record was published, "
        f"resolved {time.monotonic() - retried:.2f} s after the retry (polling every 0.1 s)"
    )
    actions = [entry["action"] for entry in detail.json()["audit"]]
    assert actions[-2:] == ["retried", "resolved"], actions
    await eventually(case.effect, until=lambda n: n >= 1, what=f"{group} to apply the retry")
    assert await case.effect() == 1  # applied once

    # Offsets are committed a moment after the records' effects (the runtime's flusher).
    await wait_caught_up(bootstrap, group, retry_topic)
    after = await committed_on(bootstrap, retry_topic)
    assert set(after) == {group}, f"groups that read {retry_topic}: {sorted(after)}"
    assert after[group] > before.get(group, -1)
