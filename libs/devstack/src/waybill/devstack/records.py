"""Tests that play another service on Kafka: publish its events, wait for a group to catch up.

A service's integration tests drive its consumer the way production does, through real
records on the real topic, without running the producing service: ``envelope`` builds the
record another service would publish (CloudEvents binary mode), ``publish`` sends it, and
``wait_caught_up`` waits until a consumer group has committed past everything on a topic (so a
test can then assert that something did *not* happen), and ``read_records`` reads what a topic
holds (a service's own events, the dead letters) as the next service would.
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

from waybill.common.contracts.event import DomainEvent
from waybill.common.envelope import EventEnvelope
from waybill.devstack.eventually import eventually


def envelope(
    event: DomainEvent,
    *,
    tenant_id: str,
    subject: str,
    sequence: int = 1,
    correlation_id: str | None = None,
    schema_version: int | None = None,
    data: dict[str, Any] | None = None,
) -> EventEnvelope:
    """The record ``event``'s service would publish (``data``/``schema_version`` override what
    is sent: e.g. an older schema version's payload)."""
    return EventEnvelope(
        source=f"/waybill/{event.service}",
        type=event.event_type,
        subject=subject,
        tenant_id=tenant_id,
        correlation_id=correlation_id or str(uuid.uuid4()),
        sequence=sequence,
        schema_version=schema_version if schema_version is not None else event.schema_version,
        data=data if data is not None else event.model_dump(mode="json"),
    )


async def publish(bootstrap_servers: str, topic: str, *envelopes: EventEnvelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for record in envelopes:
            key, value, headers = record.to_kafka()
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def wait_caught_up(
    bootstrap_servers: str, group: str, topic: str, *, timeout_s: float = 60
) -> None:
    """Until ``group`` has committed past every record now on ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        tps = await _partitions(bootstrap_servers, topic)
        ends = await consumer.end_offsets(tps)

        async def behind() -> dict[TopicPartition, tuple[int, int]]:
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            # A partition the group never had a record from has no commit: position 0.
            done = {tp: max(committed[tp].offset, 0) if tp in committed else 0 for tp in tps}
            return {tp: (done[tp], ends[tp]) for tp in tps if done[tp] < ends[tp]}

        def caught_up(lagging: dict[TopicPartition, tuple[int, int]]) -> bool:
            return not lagging

        await eventually(
            behind,
            until=caught_up,
            timeout_s=timeout_s,
            interval_s=0.2,
            what=f"group {group} caught up on {topic} (committed, end)",
        )
    finally:
        await consumer.stop()
        await admin.close()


async def _partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    # A producer's partitions_for fetches the topic's metadata; a consumer without a group
    # only knows topics it has been assigned.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        return [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Record:
    key: bytes | None
    headers: dict[str, str]
    data: Any


async def read_records(
    bootstrap_servers: str,
    topic: str,
    where: Callable[[Record], bool] = lambda record: True,
    *,
    timeout_s: float = 60,
) -> list[Record]:
    """The records on ``topic`` now (from its start to its end offsets) that ``where`` keeps."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(bootstrap_servers, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[Record] = []
        async with asyncio.timeout(timeout_s):
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    for raw in batch:
                        headers = {k: v.decode(errors="replace") for k, v in raw.headers}
                        record = Record(raw.key, headers, json.loads(raw.value))
                        if where(record):
                            found.append(record)
        return found
    finally:
        await consumer.stop()
