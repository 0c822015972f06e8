"""A consumer runtime in a process of its own, so a test can SIGKILL it mid-batch.

Usage: python consumer_process.py DSN BOOTSTRAP TOPIC GROUP
Each record's effect (a counter row per event id) takes ~20 ms, so a kill lands mid-batch.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, Table, text
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from waybill.common.consumer.runtime import EventConsumer
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore.schema import define_common_tables
from waybill.common.registry import EventRegistry

metadata = MetaData()
_, _, inbox = define_common_tables(metadata)
effects = Table(
    "effects",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("applied", Integer, nullable=False),
)


class Tick(BaseModel):
    n: int


async def main(dsn: str, bootstrap: str, topic: str, group: str) -> None:
    engine = create_async_engine(dsn)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)

    async def handle(conn: AsyncConnection, envelope: EventEnvelope, event: Any) -> None:
        await conn.execute(text("SELECT pg_sleep(0.02)"))
        await conn.execute(
            insert(effects)
            .values(event_id=envelope.id, applied=1)
            .on_conflict_do_update(
                index_elements=[effects.c.event_id], set_={"applied": effects.c.applied + 1}
            )
        )

    registry = EventRegistry()
    registry.register("tick.happened", Tick)
    consumer = EventConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        topics=[topic],
        engine=engine,
        inbox=inbox,
        registry=registry,
        handler=handle,
        service="test",
        batch_transactions=False,  # one transaction per record: a kill lands between them
        max_batch=100,
    )
    await consumer.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
