"""One trace through the kit, on real Kafka + PostgreSQL: an event appended while handling a
consumed record carries the consumer span's traceparent (a child of the producer's), a job
enqueued there runs in a ``<queue> run`` span that is the consumer span's child, and what the
job appends is in that span. The spans are the SDK's, kept by an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.backoff import Backoff, RetryPolicy
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.contracts import DomainEvent
from waybill.common.db import create_engine
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore import Caller, EventStore, NewEvent, define_common_tables
from waybill.common.queue import Job, JobQueue, QueueSpec, QueueWorker, define_queue_tables
from waybill.devstack.infra.kafka import ensure_topics
from waybill.devstack.testing import Infra, eventually

pytestmark = pytest.mark.infra

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


class ParcelAsked(DomainEvent):
    event_type: ClassVar[str] = "parcel.asked"
    service: ClassVar[str] = "tracing-probe"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The process's SDK provider (installed once per process), with an exporter we read."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@dataclass
class Kit:
    infra: Infra
    engine: AsyncEngine
    dsn: str
    store: EventStore
    outbox: Table
    inbox: Table


@pytest.fixture
async def kit(infra: Infra) -> AsyncIterator[Kit]:
    name = await asyncio.to_thread(infra.new_database, "tracing")
    settings = infra.settings()
    metadata = MetaData()
    events, outbox, inbox = define_common_tables(metadata)
    define_queue_tables(metadata)
    engine = create_engine(settings.database_dsn(name), pool_size=4)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = EventStore(events, outbox, source="/waybill/tracing-probe", topic="unused")
    yield Kit(infra, engine, settings.asyncpg_dsn(name), store, outbox, inbox)
    await engine.dispose()


async def traceparents(kit: Kit) -> dict[str, str | None]:
    """Each outbox record's stream id -> its ``traceparent`` header."""
    async with kit.engine.connect() as conn:
        rows = (await conn.execute(select(kit.outbox.c.key, kit.outbox.c.headers))).all()
    found: dict[str, str | None] = {}
    for key, headers in rows:
        pairs = json.loads(headers) if isinstance(headers, str) else headers
        found[bytes(key).decode()] = dict(pairs).get("traceparent")
    return found


def span_id(traceparent: str | None) -> str:
    assert traceparent is not None
    version, trace_id, span, _flags = traceparent.split("-")
    assert (version, trace_id) == ("00", TRACE_ID)  # the producer's trace
    return span


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


async def test_what_a_consumer_and_its_job_append_continues_the_producers_trace(
    kit: Kit, spans: InMemorySpanExporter
) -> None:
    queue = JobQueue(kit.engine, QueueSpec(name=f"parcels-{uuid.uuid4().hex[:6]}"))

    async def ask(conn: AsyncConnection, caller: Caller, event: Any) -> None:
        await kit.store.append(
            conn,
            stream_id="asked",
            stream_type="parcel",
            tenant_id=caller.tenant_id,
            events=[NewEvent("parcel.noted", {})],
            expected_version=0,
            correlation_id=caller.correlation_id,
            traceparent=caller.traceparent,
        )
        await queue.enqueue(conn, key="p1", payload={"parcel": "p1"}, tenant_id=caller.tenant_id)

    async def send(job: Job) -> None:
        assert job.payload == {"parcel": "p1"}  # the trace is the job's, not the handler's data
        async with kit.engine.begin() as conn:
            await kit.store.append(
                conn,
                stream_id="sent",
                stream_type="parcel",
                tenant_id="tenant-a",
                events=[NewEvent("parcel.sent", {})],
                expected_version=0,
                correlation_id="corr-1",
            )

    subscriptions = Subscriptions(f"g-{uuid.uuid4().hex[:8]}", {ParcelAsked: ask})
    await ensure_topics(kit.infra.bootstrap_servers, subscriptions.topics, partitions=1)
    consumer = EventConsumer.subscribing(
        subscriptions,
        bootstrap_servers=kit.infra.bootstrap_servers,
        engine=kit.engine,
        inbox=kit.inbox,
        service="tracing-probe",
        dead_letter_topic=await kit.infra.anew_topic("tracing-dlq", partitions=1),
        retry=RetryPolicy(attempts=2, backoff=Backoff(base_s=0.01, max_s=0.05)),
    )
    worker = QueueWorker(queue, send, dsn=kit.dsn, service="tracing-probe", poll_s=0.5)
    asked = EventEnvelope(
        source="/waybill/elsewhere",
        type=ParcelAsked.event_type,
        subject="asked-by-someone",
        tenant_id="tenant-a",
        correlation_id="corr-1",
        sequence=1,
        traceparent=f"00-{TRACE_ID}-{PRODUCER_SPAN}-01",
        data={},
    )
    await _produce(kit.infra, ParcelAsked.topic(), asked)
    await consumer.start()
    worker.start()
    try:
        found = await eventually(
            lambda: traceparents(kit),
            until=lambda found: {"asked", "sent"} <= found.keys(),
            what="the consumer's and the job's events in the outbox",
        )
    finally:
        await worker.stop()
        await consumer.stop()

    process = finished(spans, f"{ParcelAsked.topic()} process")
    run = finished(spans, f"{queue.name} run")
    assert process.parent is not None and process.parent.span_id == int(PRODUCER_SPAN, 16)
    assert run.parent is not None and run.parent.span_id == process.context.span_id
    assert span_id(found["asked"]) == f"{process.context.span_id:016x}"
    assert span_id(found["sent"]) == f"{run.context.span_id:016x}"
    assert process.attributes is not None
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.destination.name"] == ParcelAsked.topic()


async def _produce(infra: Infra, topic: str, envelope: EventEnvelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        key, value, headers = envelope.to_kafka()
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
