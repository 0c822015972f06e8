"""The monitor's consumer: every events topic, the dead letters, the retry outcomes and its own
retry topic, as group ``monitor``, one transaction per record (``ingest``), offsets committed
after it.

The monitor is a consumer group like the others: an event it cannot apply (a non-retryable
failure, or its retry budget spent) becomes a dead letter of group ``monitor`` on
``waybill.dlq`` (which it reads back like anyone's), a retry of it arrives on
``waybill.retry.monitor`` and its success goes to the retry outcomes, as in the common runtime.
A dead letter or an outcome it cannot apply is only logged and counted: dead-lettering the
dead-letter topic's own records would loop.

Why not the common consumer runtime (``waybill.common.consumer``): it decodes every record as a
CloudEvent of a registered type and hands its handler the typed event alone; the monitor reads
records that are no domain events (a dead letter is any record, however malformed; an outcome
is plain JSON), keeps each event's topic, partition and offset, and keeps events of types it
has no read model for. It shares the runtime's guarantees: nothing is committed before its
effects, a redelivery is recognised (``consumed_events``' key, ``dlq_records``), and while the
database is down a record is retried with backoff instead of being skipped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.backoff import DEFAULT_RETRY, RetryPolicy
from waybill.common.consumer.deadletter import DeadLetterPublisher, Failure
from waybill.common.consumer.metrics import RECORDS as CONSUMER_RECORDS
from waybill.common.consumer.retries import RetryOutcomes, retry_id_of
from waybill.common.failures import FailureType, is_retryable
from waybill.common.failures.classify import classify
from waybill.common.observability.tracing import consumer_span
from waybill.common.topics import DEAD_LETTERS, RETRY_OUTCOMES, retry_topic
from waybill.monitor.ingest import CONSUMER_GROUP, Ingest, UnreadableRecord

log = structlog.get_logger(__name__)

_DEPENDENCY_DOWN = frozenset({FailureType.TRANSIENT_DATABASE, FailureType.TRANSIENT_NETWORK})
RECORDS = Counter(
    "waybill_monitor_records_total",
    "Records the monitor consumed, by topic and outcome",
    ["topic", "outcome"],
)
# The same records in the kit's family (``waybill_consumer_records_total``), so the monitor is a
# consumer group of the idempotency view like any other: what it kept without a read model and
# a dead letter that recurred were applied; a dead letter or outcome it could not apply (only
# logged, left on its topic: dead-lettering those would loop) was skipped.
KIT_OUTCOMES = {
    "applied": "applied",
    "kept": "applied",
    "recurred": "applied",
    "duplicate": "duplicate",
    "dead_lettered": "dead_lettered",
    "failed": "skipped",
}


class Recorder:
    """Consumes ``topics`` into ``ingest`` until stopped."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topics: Sequence[str],
        engine: AsyncEngine,
        ingest: Ingest,
        retry: RetryPolicy = DEFAULT_RETRY,
        group: str = CONSUMER_GROUP,
        service: str = "monitor",
    ) -> None:
        self._engine = engine
        self._group = group
        self._service = service
        self._ingest = ingest
        self._retry = retry
        self._retries = retry_topic(group)
        self._topics = [*topics, self._retries]
        # A pattern of the exact names, not a topic list: a topic that does not exist yet (the
        # retry outcomes, before the stack creates them) does not stop the monitor from
        # starting, and is read from its start once it appears (metadata refresh).
        self._pattern = "^(" + "|".join(re.escape(topic) for topic in self._topics) + ")$"
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            metadata_max_age_ms=30_000,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"monitor-{group}",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", client_id=f"monitor-{group}-dlq"
        )
        self._dead_letters = DeadLetterPublisher(
            self._producer, DEAD_LETTERS, group=group, service=service, backoff=retry
        )
        self._outcomes = RetryOutcomes(
            self._producer, RETRY_OUTCOMES, group=group, service=service, backoff=retry
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._consumer.subscribe(pattern=self._pattern)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="monitor-recorder")
        log.info("consumer_start_succeeded", group=CONSUMER_GROUP, topics=self._topics)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()
        await self._producer.stop()
        log.info("consumer_stop_succeeded", group=CONSUMER_GROUP)

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    await self._apply(record)
                await self._commit(tp, records[-1].offset + 1)

    async def _apply(self, record: Any) -> None:
        # In the producer's trace, like the kit's consumers (one trace across the saga).
        with consumer_span(record, self._group):
            await self._apply_in_span(record)

    async def _apply_in_span(self, record: Any) -> None:
        attempt = 0
        first_failed_at: datetime | None = None
        while True:
            attempt += 1
            try:
                async with self._engine.begin() as conn:
                    outcome = await self._ingest.apply(conn, record)
            except Exception as exc:
                classification = classify(exc)
                failure = classification.type
                now = datetime.now(UTC)
                first_failed_at = first_failed_at or now
                # The database being away holds the record for as long as it takes (nothing
                # after it is applied meanwhile); any other retryable failure has the budget.
                waits = failure in _DEPENDENCY_DOWN or attempt < self._retry.attempts
                if not isinstance(exc, UnreadableRecord) and is_retryable(failure) and waits:
                    delay = self._retry.delay(min(attempt, 16))
                    log.warning(
                        "monitor_record_retry_scheduled",
                        topic=record.topic,
                        offset=record.offset,
                        failure_type=failure.value,
                        error=str(exc)[:500],
                        retry_in_s=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    continue
                failed = Failure(exc, classification, attempt, first_failed_at, now)
                outcome = await self._failed(record, failed)
            else:
                await self._retried(record, outcome)
            RECORDS.labels(record.topic, outcome).inc()
            CONSUMER_RECORDS.labels(
                self._service, self._group, record.topic, KIT_OUTCOMES.get(outcome, "skipped")
            ).inc()
            return

    async def _failed(self, record: Any, failure: Failure) -> str:
        """An event the monitor cannot apply: a dead letter of its group. A dead letter or an
        outcome it cannot apply: logged with its coordinates and counted, left on its topic."""
        log.error(
            "monitor_record_failed",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            failure_type=failure.classification.type.value,
            error=failure.describe(),
        )
        if record.topic in (DEAD_LETTERS, RETRY_OUTCOMES):
            return "failed"
        retry_of = retry_id_of(record) if record.topic == self._retries else None
        await self._dead_letters.publish(record, replace(failure, retry_of=retry_of))
        return "dead_lettered"

    async def _retried(self, record: Any, outcome: str) -> None:
        """A retried record applied (or found applied already): its outcome to the monitor."""
        retry_id = retry_id_of(record) if record.topic == self._retries else None
        if retry_id is None:
            return
        await self._outcomes.publish(retry_id, "duplicate" if outcome == "duplicate" else "applied")
        log.info("consumer_retry_succeeded", retry_id=retry_id, outcome=outcome)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError as exc:  # a rebalance: the records come again and are recognised
            log.warning("consumer_offsets_commit_failed", group=CONSUMER_GROUP, error=str(exc))
