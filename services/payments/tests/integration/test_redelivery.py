"""``order.placed`` delivered twice -- the same record again, and the same order under a new
event id (a replay) -- still opens one payment and charges once."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from waybill.common import topics
from waybill.devstack.testing import eventually
from waybill.payments.subscriptions import GROUP

from .conftest import Shop


async def find_record(bootstrap: str, topic: str, key: bytes, event_type: bytes):
    # No group: every partition, from the beginning, nothing committed.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:

        async def probe():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == key and dict(record.headers).get("ce_type") == event_type:
                        return record
            return None

        return await eventually(probe, what="the order.placed record")
    finally:
        await consumer.stop()


async def consumed_past(bootstrap: str, tp: TopicPartition, offset: int) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(GROUP, partitions=[tp])
    finally:
        await admin.close()
    committed = offsets.get(tp)
    return committed is not None and committed.offset > offset


async def test_order_placed_delivered_twice_charges_once(shop: Shop, infra):
    order = await shop.place("pm_card_ok")
    payment = await shop.settled(order["id"], "captured")
    record = await find_record(
        infra.bootstrap_servers, topics.ORDERS_EVENTS, order["id"].encode(), b"order.placed"
    )
    replayed_headers = [
        (name, str(uuid.uuid4()).encode() if name == "ce_id" else value)
        for name, value in record.headers
    ]

    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.ORDERS_EVENTS, record.value, key=record.key, headers=list(record.headers)
        )
        last = await producer.send_and_wait(
            topics.ORDERS_EVENTS, record.value, key=record.key, headers=replayed_headers
        )
    finally:
        await producer.stop()
    tp = TopicPartition(last.topic, last.partition)
    await eventually(
        lambda: consumed_past(infra.bootstrap_servers, tp, last.offset),
        what="payments to consume both copies",
    )

    response = await shop.payments.get("/payments", params={"order_id": order["id"]})
    assert [p["id"] for p in response.json()["items"]] == [payment["id"]]
    assert (await shop.payment_of(order["id"]))["version"] == payment["version"]
    assert len((await shop.ledger(order["id"]))["charges"]) == 1
