"""Retrying a dead letter reaches the one consumer group that failed it (ADR 0016), on real Kafka
and PostgreSQL.

Two groups, A and B, consume one topic. An event poisoned for A (the test poison switch) is
applied by B and dead-lettered by A, with the dead letter's full set of headers. The test then
plays the monitor: it re-produces the dead letter's record to ``waybill.retry.<A>`` with a
retry id, first unedited (it fails again: a new dead letter with ``dlq_retry_of``), then with
the poison removed (A applies it once and says so on the outcomes topic, and B never sees it).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from waybill.common import topics
from waybill.common.backoff import Backoff, RetryPolicy
from waybill.common.consumer.poison import POISON_KEY
from waybill.common.consumer.runtime import EventConsumer
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore.schema import define_common_tables
from waybill.common.failures.fingerprint import fingerprint
from waybill.common.registry import EventRegistry
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra.kafka import ensure_topics
from waybill.devstack.records import Record, read_records, wait_caught_up
from waybill.devstack.testing import Infra, eventually

pytestmark = pytest.mark.infra

PROBE_TYPE = "probe.retried"
FAST_RETRY = RetryPolicy(attempts=3, backoff=Backoff(base_s=0.01, factor=2, max_s=0.05))


class Probe(BaseModel):
    note: str = "ok"


@dataclass
class Stack:
    """One topic, two groups over one database (inbox and effects keyed by group)."""

    infra: Infra
    engine: AsyncEngine
    inbox: Table
    effects: Table
    topic: str
    dlq_topic: str
    outcomes_topic: str
    group_a: str
    group_b: str
    calls: Counter[tuple[str, uuid.UUID]] = field(default_factory=Counter)

    def consumer(self, group: str, *, poison_switch: bool = True) -> EventConsumer:
        registry = EventRegistry()
        registry.register(PROBE_TYPE, Probe)

        async def handle(conn: AsyncConnection, envelope: EventEnvelope, payload: Any) -> None:
            self.calls[group, envelope.id] += 1
            await conn.execute(
                insert(self.effects)
                .values(group=group, event_id=envelope.id, applied=1)
                .on_conflict_do_update(
                    index_elements=[self.effects.c.group, self.effects.c.event_id],
                    set_={"applied": self.effects.c.applied + 1},
                )
            )

        return EventConsumer(
            bootstrap_servers=self.infra.bootstrap_servers,
            group_id=group,
            topics=[self.topic],
            engine=self.engine,
            inbox=self.inbox,
            registry=registry,
            handler=handle,
            retry=FAST_RETRY,
            service="probe-service",
            dead_letter_topic=self.dlq_topic,
            retry_outcomes_topic=self.outcomes_topic,
            poison_switch=poison_switch,
        )

    async def applied(self) -> dict[tuple[str, uuid.UUID], int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(self.effects))
            return {(row.group, row.event_id): row.applied for row in rows}

    async def dead_letters(self, count: int) -> list[Record]:
        return await eventually(
            lambda: read_records(self.infra.bootstrap_servers, self.dlq_topic),
            until=lambda found: len(found) >= count,
            timeout_s=30,
            what=f"{count} dead letter(s)",
        )

    async def outcomes(self, retry_id: str, count: int = 1) -> list[Record]:
        return await eventually(
            lambda: read_records(
                self.infra.bootstrap_servers,
                self.outcomes_topic,
                lambda r: r.key == retry_id.encode(),
            ),
            until=lambda found: len(found) >= count,
            timeout_s=30,
            what=f"the outcome of retry {retry_id}",
        )


@pytest.fixture
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    name = await asyncio.to_thread(infra.new_database, "retries")
    engine = create_async_engine(infra.settings().database_dsn(name))
    metadata = MetaData()
    _, _, inbox = define_common_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("group", String, primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("applied", Integer, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    suffix = uuid.uuid4().hex[:12]
    group_a, group_b = f"group-a-{suffix}", f"group-b-{suffix}"
    # What the dev stack does for the topology's groups (topics.ALL_TOPICS).
    await ensure_topics(
        infra.bootstrap_servers,
        [topics.retry_topic(group_a), topics.retry_topic(group_b)],
        partitions=1,
    )
    yield Stack(
        infra=infra,
        engine=engine,
        inbox=inbox,
        effects=effects,
        topic=await infra.anew_topic("retries", partitions=1),
        dlq_topic=await infra.anew_topic("retries-dlq", partitions=1),
        outcomes_topic=await infra.anew_topic("retries-outcomes", partitions=1),
        group_a=group_a,
        group_b=group_b,
    )
    await engine.dispose()


def probe_event(data: dict[str, Any]) -> EventEnvelope:
    return EventEnvelope(
        source="/waybill/probe",
        type=PROBE_TYPE,
        subject="stream-1",
        tenant_id="tenant-a",
        correlation_id=str(uuid.uuid4()),
        sequence=1,
        data=data,
    )


def records_counted(group: str, topic: str, outcome: str) -> float:
    labels = {"service": "probe-service", "group": group, "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("waybill_consumer_records_total", labels) or 0.0


async def produce(infra: Infra, topic: str, key: bytes, value: bytes, headers: Any) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def retry_as_the_monitor(
    stack: Stack, dead: Record, retry_id: str, data: dict[str, Any] | None = None
) -> None:
    """What the monitor does (the spec): the original record, or its edited value, with its
    non-``dlq_`` headers plus the retry id and priority, to the failing group's retry topic."""
    original = [(k, v.encode()) for k, v in dead.headers.items() if not k.startswith("dlq_")]
    headers = [*original, ("dlq_retry_id", retry_id.encode()), ("dlq_retry_priority", b"high")]
    value = json.dumps(dead.data if data is None else data).encode()
    group = dead.headers["dlq_consumer_group"]
    assert dead.key is not None
    await produce(stack.infra, topics.retry_topic(group), dead.key, value, headers)


async def test_a_retried_dead_letter_reaches_only_the_group_that_failed_it(stack: Stack) -> None:
    good = probe_event({"note": "fine"})
    poisoned = probe_event({"note": "bad for A", POISON_KEY: stack.group_a})
    for event in (good, poisoned):
        await produce(stack.infra, stack.topic, *event.to_kafka())
    group_a, group_b = stack.consumer(stack.group_a), stack.consumer(stack.group_b)
    await group_a.start()
    await group_b.start()
    try:
        # B applies both; A applies the good one and dead-letters the poisoned one.
        (dead,) = await stack.dead_letters(1)
        await eventually(
            stack.applied,
            until=lambda done: len(done) == 3,
            timeout_s=30,
            what="B applied both events, A the good one",
        )
        assert await stack.applied() == {
            (stack.group_a, good.id): 1,
            (stack.group_b, good.id): 1,
            (stack.group_b, poisoned.id): 1,
        }
        headers = dead.headers
        assert dead.key == poisoned.to_kafka()[0]
        assert headers["ce_id"] == str(poisoned.id)
        assert headers["dlq_kind"] == "consumer"
        assert headers["dlq_consumer_group"] == stack.group_a
        assert headers["dlq_service"] == "probe-service"
        assert headers["dlq_original_topic"] == stack.topic
        assert headers["dlq_failure_type"] == "business_logic_violation"
        assert headers["dlq_failure_class"] == "business_logic_violation"
        assert headers["dlq_confidence"] == "1.00"
        assert headers["dlq_remediation"] == "escalate_to_admin"
        assert headers["dlq_exception_type"] == "waybill.common.consumer.poison.PoisonEvent"
        assert "raise PoisonEvent(" in headers["dlq_stack"]
        assert len(headers["dlq_stack"]) <= 4000
        assert headers["dlq_fingerprint"] == fingerprint(
            "waybill.common.consumer.poison.PoisonEvent",
            "waybill.common.consumer.poison:raise_if_poisoned",
            stack.topic,
            stack.group_a,
        )
        assert headers["dlq_attempts"] == "1"  # a business rule is not retried
        assert "dlq_retry_of" not in headers

        # Retried as it was: still poisoned, so dead-lettered again, marked as that retry's.
        await retry_as_the_monitor(stack, dead, "dlq_first-retry")
        dead_again = (await stack.dead_letters(2))[1]
        assert dead_again.headers["dlq_retry_of"] == "dlq_first-retry"
        assert dead_again.headers["ce_id"] == str(poisoned.id)
        assert dead_again.headers["dlq_consumer_group"] == stack.group_a
        assert dead_again.headers["dlq_failure_type"] == "business_logic_violation"
        assert "dlq_retry_id" not in dead_again.headers  # replaced by dlq_retry_of

        # The cause fixed (the poison removed by an edited retry): applied once, by A only.
        fixed = {k: v for k, v in dead.data.items() if k != POISON_KEY}
        await retry_as_the_monitor(stack, dead, "dlq_fixed-retry", data=fixed)
        (outcome,) = await stack.outcomes("dlq_fixed-retry")
        assert outcome.data["retry_id"] == "dlq_fixed-retry"
        assert outcome.data["group"] == stack.group_a
        assert outcome.data["service"] == "probe-service"
        assert outcome.data["outcome"] == "applied"
        assert outcome.data["at"]

        # The same retry delivered again (a monitor retrying twice): the inbox says duplicate.
        await retry_as_the_monitor(stack, dead, "dlq_fixed-retry", data=fixed)
        outcomes = await stack.outcomes("dlq_fixed-retry", count=2)
        assert [o.data["outcome"] for o in outcomes] == ["applied", "duplicate"]

        # B had every chance to see the retries: caught up on everything, and never subscribed.
        await wait_caught_up(stack.infra.bootstrap_servers, stack.group_b, stack.topic)
        retry_topic_a = topics.retry_topic(stack.group_a)
        seen_by_b = {
            outcome: records_counted(stack.group_b, retry_topic_a, outcome)
            for outcome in ("applied", "duplicate", "skipped", "dead_lettered")
        }
        assert set(seen_by_b.values()) == {0}
        assert records_counted(stack.group_a, retry_topic_a, "applied") == 1
    finally:
        await group_a.stop()
        await group_b.stop()
    assert await stack.applied() == {
        (stack.group_a, good.id): 1,
        (stack.group_a, poisoned.id): 1,
        (stack.group_b, good.id): 1,
        (stack.group_b, poisoned.id): 1,
    }
    assert stack.calls[stack.group_b, poisoned.id] == 1  # B never saw a retried record
    assert len(await read_records(stack.infra.bootstrap_servers, stack.dlq_topic)) == 2


async def test_the_poison_switch_is_off_unless_turned_on(stack: Stack) -> None:
    poisoned = probe_event({"note": "harmless", POISON_KEY: stack.group_a})
    await produce(stack.infra, stack.topic, *poisoned.to_kafka())
    # The default (WAYBILL_TEST_POISON unset): the key is ordinary data.
    assert WaybillSettings.model_fields["test_poison"].default is False
    consumer = stack.consumer(stack.group_a, poison_switch=False)
    await consumer.start()
    try:
        await eventually(
            stack.applied,
            until=lambda done: (stack.group_a, poisoned.id) in done,
            timeout_s=30,
            what="the poisoned event applied with the switch off",
        )
    finally:
        await consumer.stop()
    assert await read_records(stack.infra.bootstrap_servers, stack.dlq_topic) == []
