"""Orders follows payment outcomes from Kafka: captured -> paid (stock committed), failed ->
payment_failed (stock released), a redelivered outcome changes nothing the second time."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.common.contracts.payments import PaymentCaptured, PaymentEvent, PaymentFailed
from waybill.common.envelope import EventEnvelope
from waybill.devstack.testing import Infra, eventually


async def test_a_captured_payment_marks_the_order_paid_once(tenant: Tenant, infra: Infra):
    await tenant.stock("PAID", 5)
    order = (await tenant.service.post("/orders", json=order_body("PAID", 2))).json()
    captured = PaymentCaptured(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        amount_cents=order["total_cents"],
        currency="USD",
        provider="sandbox",
        provider_payment_id="pi_test",
    )
    envelope = _envelope(tenant, captured)

    await _publish(infra, envelope, envelope)  # the same record twice: a redelivery

    assert await _wait_status(tenant, order["id"], "paid") == "paid"
    stock = (await tenant.admin.get("/inventory/PAID")).json()
    assert (stock["available"], stock["reserved"]) == (3, 0)  # committed: gone for good
    await _publish(infra, envelope)  # and once more, after the order is already paid
    await _wait_consumed(infra, order["id"])
    events = (await tenant.service.get(f"/orders/{order['id']}/events")).json()["items"]
    assert [e["type"] for e in events] == ["order.placed", "order.paid"]
    assert events[1]["data"]["payment_id"] == captured.payment_id


async def test_a_failed_payment_releases_the_stock(tenant: Tenant, infra: Infra):
    await tenant.stock("FAIL", 5)
    order = (await tenant.service.post("/orders", json=order_body("FAIL", 2))).json()
    failed = PaymentFailed(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        code="card_declined",
        reason="Your card was declined.",
    )

    await _publish(infra, _envelope(tenant, failed))

    assert await _wait_status(tenant, order["id"], "payment_failed") == "payment_failed"
    stock = (await tenant.admin.get("/inventory/FAIL")).json()
    assert (stock["available"], stock["reserved"]) == (5, 0)


async def test_a_capture_for_a_cancelled_order_leaves_it_cancelled(tenant: Tenant, infra: Infra):
    await tenant.stock("LATE", 5)
    order = (await tenant.service.post("/orders", json=order_body("LATE"))).json()
    assert (await tenant.service.post(f"/orders/{order['id']}/cancel")).status_code == 200
    captured = PaymentCaptured(
        payment_id=f"pay_{uuid.uuid4().hex}",
        order_id=order["id"],
        amount_cents=order["total_cents"],
        currency="USD",
        provider="sandbox",
        provider_payment_id="pi_late",
    )
    await _publish(infra, _envelope(tenant, captured))
    await _wait_consumed(infra, order["id"])

    assert (await tenant.service.get(f"/orders/{order['id']}")).json()["status"] == "cancelled"
    stock = (await tenant.admin.get("/inventory/LATE")).json()
    assert (stock["available"], stock["reserved"]) == (5, 0)


def _envelope(tenant: Tenant, event: PaymentEvent) -> EventEnvelope:
    return EventEnvelope(
        source="/waybill/payments",
        type=event.event_type,
        subject=event.payment_id,  # type: ignore[attr-defined]
        tenant_id=tenant.id,
        correlation_id=str(uuid.uuid4()),
        sequence=1,
        data=event.model_dump(mode="json"),
    )


async def _publish(infra: Infra, *envelopes: EventEnvelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            key, value, headers = envelope.to_kafka()
            await producer.send_and_wait(topics.PAYMENTS_EVENTS, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _wait_status(tenant: Tenant, order_id: str, wanted: str, timeout_s: float = 60) -> str:
    async def status() -> str:
        return (await tenant.service.get(f"/orders/{order_id}")).json()["status"]  # type: ignore[no-any-return]

    return await eventually(
        status,
        until=lambda current: current == wanted,
        timeout_s=timeout_s,
        what=f"order {order_id} {wanted}",
    )


async def _wait_consumed(infra: Infra, order_id: str, timeout_s: float = 60) -> None:
    """Until the orders consumer group has committed past every record on the topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    await producer.start()
    try:
        partitions = await producer.partitions_for(topics.PAYMENTS_EVENTS)
        tps = [TopicPartition(topics.PAYMENTS_EVENTS, p) for p in partitions]

        async def behind() -> dict:
            """Partitions where the group's committed position is short of the end offset."""
            ends = await _end_offsets(infra, tps)
            committed = await admin.list_consumer_group_offsets("orders", partitions=tps)
            # A partition the group never had a record from has no commit: position 0.
            done = {tp: max(committed[tp].offset, 0) if tp in committed else 0 for tp in tps}
            return {tp: (done[tp], ends[tp]) for tp in tps if done[tp] < ends[tp]}

        await eventually(
            behind,
            until=lambda lagging: not lagging,
            timeout_s=timeout_s,
            interval_s=0.2,
            what=f"orders consumer caught up for {order_id} (committed, end)",
        )
    finally:
        await producer.stop()
        await admin.close()


async def _end_offsets(infra: Infra, tps) -> dict:
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers)
    await consumer.start()
    try:
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
