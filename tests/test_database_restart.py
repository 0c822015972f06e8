"""The saga across a PostgreSQL restart: every accepted order settles, nothing is dead-lettered.

Orders are placed at a steady rate while the session's PostgreSQL (every service's database)
is stopped for a while and started again. Requests that meet the outage are refused (they are
not counted); every order that was accepted (201) must settle, paid or payment_failed. The
consumers must pause on their unreachable database rather than spend the records' retry
budgets, so no record of this tenant reaches the dead-letter topic.

So that both consumers surely meet the outage (not only when a record happens to be in flight
at the moment the database stops), records they already applied are delivered to them again
while it is down, as a rebalance would: ``order.placed`` to payments, ``payment.captured`` to
orders. Without the pause they are dead-lettered within seconds; with it they wait, and the
inbox then recognises them as duplicates.

The PostgreSQL is the session's: the test starts it again whatever happens, and waits until
every service of the session answers ready, so later tests find the stack as it was.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import Saga, order_body

from waybill.common import topics
from waybill.devstack.testing import Infra, eventually

from .saga_support import SETTLED, wait_orders

pytestmark = pytest.mark.infra

RATE_PER_S = 10
OUTAGE_S = 15


@pytest.fixture
async def restartable(infra: Infra, saga: Saga) -> AsyncIterator[Saga]:
    if infra.postgres is None:
        pytest.skip("database restarts need the embedded PostgreSQL (external one configured)")
    yield saga
    if not infra.postgres_running():
        await asyncio.to_thread(infra.start_postgres)
    for service in (saga.orders, saga.payments, saga.sandbox):
        await _until_ready(service.url, timeout_s=120)


@pytest.mark.timeout(600)
async def test_every_accepted_order_settles_across_a_database_restart(
    infra: Infra, restartable: Saga, tenant: Tenant
):
    sku = f"DBRESTART-{uuid.uuid4().hex[:6]}"
    await tenant.stock(sku, 100_000)
    accepted: list[str] = []
    stop = asyncio.Event()
    placing = asyncio.create_task(_place_steadily(tenant, sku, accepted, stop))
    try:
        await eventually(
            lambda: len(accepted) >= 2 * RATE_PER_S, timeout_s=60, what="orders accepted"
        )
        settled = await wait_orders(tenant, accepted[:5], statuses={"paid"}, timeout_s=60)
        assert set(settled.values()) == {"paid"}, settled
        redeliveries = await _applied_records(infra, set(accepted[:5]))
        await asyncio.to_thread(infra.stop_postgres)
        down_at = len(accepted)
        await _produce(infra, redeliveries)
        await asyncio.sleep(OUTAGE_S)  # the outage itself: orders keep coming meanwhile
        await asyncio.to_thread(infra.start_postgres)
        # Placing goes on until orders are accepted again, and a while after.
        await eventually(
            lambda: len(accepted) >= down_at + 2 * RATE_PER_S,
            timeout_s=120,
            what="orders accepted again",
        )
    finally:
        stop.set()
        await placing

    statuses = await wait_orders(tenant, accepted, statuses=SETTLED, timeout_s=150)

    unsettled = {k: v for k, v in statuses.items() if v not in SETTLED}
    assert not unsettled, f"{len(unsettled)} of {len(accepted)} accepted orders: {unsettled}"
    assert await _dead_letters_of(infra, tenant.id) == []


async def _place_steadily(
    tenant: Tenant, sku: str, accepted: list[str], stop: asyncio.Event
) -> None:
    """POST /orders every 1/RATE_PER_S s, each on its own; collect the ids of the 201s."""
    in_flight: set[asyncio.Task[None]] = set()

    async def place() -> None:
        try:
            response = await tenant.service.post("/orders", json=order_body(sku), timeout=10)
        except httpx.HTTPError:
            return  # refused or timed out during the outage: not accepted, not counted
        if response.status_code == 201:
            accepted.append(response.json()["id"])

    while not stop.is_set():
        task = asyncio.create_task(place())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        await asyncio.sleep(1 / RATE_PER_S)
    await asyncio.gather(*in_flight)


async def _applied_records(infra: Infra, order_ids: set[str]) -> list[Any]:
    """The ``order.placed`` and ``payment.captured`` records of ``order_ids``, from Kafka."""
    wanted = {
        (topics.ORDERS_EVENTS, "order.placed"),
        (topics.PAYMENTS_EVENTS, "payment.captured"),
    }
    consumer = AIOKafkaConsumer(
        *{topic for topic, _ in wanted},
        bootstrap_servers=infra.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        found: dict[tuple[str, str, str], Any] = {}
        deadline = time.monotonic() + 60
        while len(found) < len(wanted) * len(order_ids):
            assert time.monotonic() < deadline, f"records found: {sorted(found)}"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event_type = dict(record.headers).get("ce_type", b"").decode()
                    if (record.topic, event_type) not in wanted:
                        continue
                    order_id = json.loads(record.value).get("order_id")
                    if order_id in order_ids:
                        found[(record.topic, event_type, order_id)] = record
        return list(found.values())
    finally:
        await consumer.stop()


async def _produce(infra: Infra, records: list[Any]) -> None:
    """The same records again (same key, value and headers, so the same event ids)."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(r.topic, r.value, key=r.key, headers=list(r.headers))
    finally:
        await producer.stop()


async def _dead_letters_of(infra: Infra, tenant_id: str) -> list[tuple[str, str]]:
    """(consumer group, event type) of every dead letter of ``tenant_id`` so far."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        # The session created every topic with ``infra.partitions`` partitions.
        partitions = [TopicPartition(topics.DEAD_LETTERS, p) for p in range(infra.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[tuple[str, str]] = []
        deadline = time.monotonic() + 60
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            assert time.monotonic() < deadline, "the dead-letter topic could not be read"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    headers = {k: v.decode(errors="replace") for k, v in record.headers}
                    if headers.get("ce_tenantid") == tenant_id:
                        found.append((headers["dlq_consumer_group"], headers.get("ce_type", "")))
        return found
    finally:
        await consumer.stop()


async def _until_ready(url: str, *, timeout_s: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:

        async def ready() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(
            ready, timeout_s=timeout_s, ignoring=(httpx.HTTPError,), what=f"{url} ready again"
        )
