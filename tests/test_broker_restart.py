"""Nothing lost across a broker restart: orders keep being accepted while Kafka is down, every
``order.placed`` reaches the topic once it is back, and an inbox consumer applies each event
exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, Text, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from tests.saga_stack import OrdersTenant as Tenant
from tests.saga_stack import order_body

from waybill.common import topics
from waybill.common.backoff import Backoff, RetryPolicy
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.contracts import orders as contract
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore.schema import define_common_tables
from waybill.common.registry import EventRegistry
from waybill.devstack.testing import Infra, eventually

metadata = MetaData()
_, _, inbox = define_common_tables(metadata)
applied = Table(
    "applied",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("times", Integer, nullable=False),
)


async def test_orders_placed_across_a_broker_restart_are_published_and_applied_once(
    infra: Infra, tenant: Tenant
):
    await tenant.stock("RESTART", 10_000)
    database = await asyncio.to_thread(infra.new_database, "restart")
    engine = create_async_engine(infra.settings().database_dsn(database))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)

    async def count_placed(conn: AsyncConnection, envelope: EventEnvelope, event: Any) -> None:
        # Not idempotent on purpose: only the inbox stands between a redelivery and a 2.
        if envelope.tenant_id == tenant.id and envelope.type == "order.placed":
            await conn.execute(
                insert(applied)
                .values(order_id=envelope.subject, times=1)
                .on_conflict_do_update(
                    index_elements=[applied.c.order_id], set_={"times": applied.c.times + 1}
                )
            )

    consumer = EventConsumer(
        bootstrap_servers=infra.bootstrap_servers,
        group_id=f"restart-{uuid.uuid4().hex[:8]}",
        topics=[topics.ORDERS_EVENTS],
        engine=engine,
        inbox=inbox,
        registry=contract.register(EventRegistry()),
        handler=count_placed,
        service="test",
        retry=RetryPolicy(attempts=8, backoff=Backoff(base_s=0.2, max_s=2)),
    )
    await consumer.start()
    placed: list[str] = []
    try:
        placed += await _place(tenant, 20)
        await asyncio.to_thread(infra.stop_kafka)
        placed += await _place(
            tenant, 20
        )  # accepted while the broker is down: the outbox holds them
        await asyncio.to_thread(infra.start_kafka)
        placed += await _place(tenant, 20)

        times = await _wait_until_applied(engine, set(placed), timeout_s=120)
    finally:
        await consumer.stop()
        await engine.dispose()

    assert set(times) == set(placed), f"missing: {set(placed) - set(times)}"
    assert set(times.values()) == {1}, {k: v for k, v in times.items() if v != 1}


async def _place(tenant: Tenant, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = await tenant.service.post("/orders", json=order_body("RESTART"))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def _wait_until_applied(engine, wanted: set[str], timeout_s: float) -> dict[str, int]:
    async def times() -> dict[str, int]:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(applied.c.order_id, applied.c.times))).all()
        return {r.order_id: r.times for r in rows}

    return await eventually(
        times,
        until=lambda seen: wanted <= seen.keys(),
        timeout_s=timeout_s,
        interval_s=0.3,
        what=f"{len(wanted)} orders applied by the consumer",
    )
