"""Feeding the orders service the events it consumes, as payments and shipping would publish
them, and reading what came of it: the order's status, how far the ``orders`` consumer group
has read a topic, and the records of a topic (orders' own events, the dead letters).

Shared by orders' integration tests (payment outcomes, shipment news, ``order.paid`` v2); the
records go straight to Kafka, so orders is tested against the broker, not a stand-in.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.payments import PaymentCaptured
from waybill.common.envelope import EventEnvelope
from waybill.devstack.testing import Infra, eventually

ORDERS_GROUP = "orders"


def envelope(
    tenant: Tenant, event: DomainEvent, *, subject: str, sequence: int = 1
) -> EventEnvelope:
    """``event`` as its producing service publishes it: in ``subject``'s stream, at
    ``sequence``, with the schema version its class declares."""
    return EventEnvelope(
        source=f"/waybill/{event.service}",
        type=event.event_type,
        subject=subject,
        tenant_id=tenant.id,
        correlation_id=str(uuid.uuid4()),
        sequence=sequence,
        schema_version=event.schema_version,
        data=event.model_dump(mode="json"),
    )


async def publish(infra: Infra, topic: str, *envelopes: EventEnvelope) -> None:
    """Each envelope as one record on ``topic``, in order (one stream: one partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for item in envelopes:
            key, value, headers = item.to_kafka()
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


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
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    await producer.start()
    try:
        partitions = await producer.partitions_for(topic)
        tps = [TopicPartition(topic, p) for p in partitions]

        async def behind() -> dict[TopicPartition, tuple[int, int]]:
            """Partitions where the group's committed position is short of the end offset."""
            ends = await _end_offsets(infra, tps)
            committed = await admin.list_consumer_group_offsets(ORDERS_GROUP, partitions=tps)
            # A partition the group never had a record from has no commit: position 0.
            done = {tp: max(committed[tp].offset, 0) if tp in committed else 0 for tp in tps}
            return {tp: (done[tp], ends[tp]) for tp in tps if done[tp] < ends[tp]}

        await eventually(
            behind,
            until=lambda lagging: not lagging,
            timeout_s=timeout_s,
            interval_s=0.2,
            what=f"orders consumer caught up on {topic} for {what} (committed, end)",
        )
    finally:
        await producer.stop()
        await admin.close()


@dataclass(frozen=True)
class Record:
    headers: dict[str, str]
    data: Any


async def records(
    infra: Infra, topic: str, where: Callable[[dict[str, str]], bool], timeout_s: float = 60
) -> list[Record]:
    """The records on ``topic`` now (from its start to its end offsets) whose headers match."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            tps = [TopicPartition(topic, p) for p in range(infra.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[Record] = []
        async with asyncio.timeout(timeout_s):
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    for record in batch:
                        headers = {k: v.decode(errors="replace") for k, v in record.headers}
                        if where(headers):
                            found.append(Record(headers, json.loads(record.value)))
        return found
    finally:
        await consumer.stop()


async def _end_offsets(infra: Infra, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def paid_order(tenant: Tenant, infra: Infra, sku: str) -> dict[str, Any]:
    """A placed order whose payment payments reported captured; returns it once ``paid``."""
    await tenant.stock(sku, 5)
    response = await tenant.service.post("/orders", json=order_body(sku))
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    captured = PaymentCaptured(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        amount_cents=order["total_cents"],
        currency="USD",
        provider="sandbox",
        provider_payment_id=f"pi_{uuid.uuid4().hex[:12]}",
    )
    await publish(
        infra, topics.PAYMENTS_EVENTS, envelope(tenant, captured, subject=captured.payment_id)
    )
    await wait_status(tenant, order["id"], "paid")
    return order
