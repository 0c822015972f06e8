"""payments' AsyncAPI document is derived from its event classes and its subscription table,
and tells the truth: everything a payment's life puts on Kafka is in it, and its private
``payment.order_closed`` is in neither."""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from waybill.common import topics

from .conftest import Shop

PAYMENT_TYPES = {
    "payment.created",
    "payment.processing",
    "payment.captured",
    "payment.failed",
    "payment.refunded",
}


def sides(document: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(published, consumed) as (topic, event type) pairs, read from the channel names."""
    published: set[tuple[str, str]] = set()
    consumed: set[tuple[str, str]] = set()
    for name, channel in document["channels"].items():
        _, side, event_type = name.split(":")
        (published if side == "publish" else consumed).add((channel["address"], event_type))
    return published, consumed


async def test_the_document_lists_every_type_payments_publishes_and_nothing_private(
    shop: Shop, infra
):
    response = await shop.payments.get("/asyncapi.json")
    assert response.status_code == 200, response.text
    published, consumed = sides(response.json())
    assert published == {(topics.PAYMENTS_EVENTS, t) for t in PAYMENT_TYPES}
    assert consumed == {
        (topics.ORDERS_EVENTS, "order.placed"),
        (topics.ORDERS_EVENTS, "order.cancelled"),
        (topics.ORDERS_EVENTS, "order.expired"),
    }

    # A payment captured, then its order cancelled: created, captured, order closed (private),
    # refunded. What reaches Kafka is all documented.
    order = await shop.place("pm_card_ok")
    payment = await shop.settled(order["id"], "captured")
    assert (await shop.tenant.service.post(f"/orders/{order['id']}/cancel")).status_code == 200
    refunded = await shop.settled(order["id"], "refunded")
    assert refunded["order_closed"] is True
    on_kafka = await types_on_topic(infra.bootstrap_servers, payment["id"], "payment.refunded")
    assert on_kafka == ["payment.created", "payment.captured", "payment.refunded"]
    assert {(topics.PAYMENTS_EVENTS, t) for t in on_kafka} <= published


async def types_on_topic(bootstrap: str, key: str, until: str, timeout_s: float = 30) -> list[str]:
    """The ``ce_type`` of each event keyed ``key`` on the payments topic, in stream order
    (a record the relay published twice counts once), read until one of type ``until``."""
    consumer = AIOKafkaConsumer(
        topics.PAYMENTS_EVENTS,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: dict[int, str] = {}  # ce_sequence -> ce_type
        deadline = time.monotonic() + timeout_s
        while until not in seen.values():
            assert time.monotonic() < deadline, f"no {until} for {key} within {timeout_s}s"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == key.encode():
                        headers = dict(record.headers)
                        seen[int(headers["ce_sequence"])] = headers["ce_type"].decode()
        return [seen[sequence] for sequence in sorted(seen)]
    finally:
        await consumer.stop()
