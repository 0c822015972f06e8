"""A consumer process killed mid-batch loses nothing and applies nothing twice: offsets are
committed only after the effects are durable, and the inbox absorbs the redelivery."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import column, func, select, table
from sqlalchemy.ext.asyncio import create_async_engine

from waybill.common.envelope import EventEnvelope
from waybill.devstack.infra.process import ManagedProcess
from waybill.devstack.testing import Infra, eventually

SCRIPT = Path(__file__).with_name("consumer_process.py")
effects = table("effects", column("event_id"), column("applied"))  # created by the script
EVENTS = 300


async def test_a_consumer_killed_mid_batch_applies_every_event_exactly_once(infra: Infra):

    topic = await infra.anew_topic("kill", partitions=3)
    group = f"kill-{uuid.uuid4().hex[:8]}"
    database = await asyncio.to_thread(infra.new_database, "kill")
    dsn = infra.settings().database_dsn(database)
    ids = await _produce(infra.bootstrap_servers, topic, EVENTS)
    engine = create_async_engine(dsn)

    def consumer() -> ManagedProcess:
        process = ManagedProcess(
            "consumer",
            [sys.executable, str(SCRIPT), dsn, infra.bootstrap_servers, topic, group],
            log_path=infra.root / "logs" / f"{group}-{time.monotonic_ns()}.log",
            env=infra.env(),
        )
        process.start()
        return process

    first = consumer()
    try:
        applied_before_kill = await _wait_applied(engine, effects, at_least=60, timeout_s=90)
        first.kill()  # SIGKILL: no shutdown, no final commit
        assert applied_before_kill < EVENTS, "the kill must land before the work is done"
        second = consumer()
        try:
            await _wait_applied(engine, effects, at_least=EVENTS, timeout_s=120)
        finally:
            second.stop()
        async with engine.connect() as conn:
            rows = (await conn.execute(select(effects.c.event_id, effects.c.applied))).all()
    finally:
        first.stop()
        await engine.dispose()

    assert {r.event_id for r in rows} == set(ids)
    assert {r.applied for r in rows} == {1}


async def _produce(bootstrap: str, topic: str, count: int) -> list[uuid.UUID]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    ids = []
    try:
        for n in range(count):
            envelope = EventEnvelope(
                source="/test",
                type="tick.happened",
                subject=f"stream-{n % 17}",
                tenant_id="t",
                correlation_id="c",
                sequence=n,
                data={"n": n},
            )
            key, value, headers = envelope.to_kafka()
            await producer.send(topic, value, key=key, headers=headers)
            ids.append(envelope.id)
        await producer.flush()
    finally:
        await producer.stop()
    return ids


async def _wait_applied(engine, effects, *, at_least: int, timeout_s: float) -> int:

    async def applied() -> int:
        try:
            async with engine.connect() as conn:
                return int(await conn.scalar(select(func.count()).select_from(effects)) or 0)
        except Exception:  # the table appears when the consumer process has started
            return 0

    return await eventually(
        applied,
        until=lambda count: count >= at_least,
        timeout_s=timeout_s,
        what=f"{at_least} effects applied",
    )
