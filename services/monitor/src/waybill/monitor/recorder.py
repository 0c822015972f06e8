"""The monitor's consumer: every events topic, the dead letters and the retry outcomes, as
group ``monitor``, one transaction per record (``ingest``), offsets committed after it.

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
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.backoff import DEFAULT_RETRY, RetryPolicy
from waybill.common.failures import FailureType, is_retryable
from waybill.common.failures.classify import classify
from waybill.monitor.ingest import Ingest, UnreadableRecord

log = structlog.get_logger(__name__)

CONSUMER_GROUP = "monitor"
_DEPENDENCY_DOWN = frozenset({FailureType.TRANSIENT_DATABASE, FailureType.TRANSIENT_NETWORK})
RECORDS = Counter(
    "waybill_monitor_records_total",
    "Records the monitor consumed, by topic and outcome",
    ["topic", "outcome"],
)


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
    ) -> None:
        self._engine = engine
        self._ingest = ingest
        self._retry = retry
        self._topics = list(topics)
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
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer.subscribe(pattern=self._pattern)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="monitor-recorder")
        log.info("consumer_start_succeeded", group=CONSUMER_GROUP, topics=self._topics)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()
        log.info("consumer_stop_succeeded", group=CONSUMER_GROUP)

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    await self._apply(record)
                await self._commit(tp, records[-1].offset + 1)

    async def _apply(self, record: Any) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._engine.begin() as conn:
                    outcome = await self._ingest.apply(conn, record)
            except UnreadableRecord as exc:
                outcome = "unreadable"
                log.error(
                    "monitor_record_unreadable",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=str(exc)[:500],
                )
            except Exception as exc:
                failure = classify(exc).type
                # The database being away holds the record for as long as it takes (nothing
                # after it is applied meanwhile); any other retryable failure has the budget.
                waits = failure in _DEPENDENCY_DOWN or attempt < self._retry.attempts
                if is_retryable(failure) and waits:
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
                # A record this monitor cannot apply (a bug or a foreign payload): logged with
                # its coordinates, counted, and left on its topic for a rebuild after a fix.
                outcome = "failed"
                log.error(
                    "monitor_record_failed",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    failure_type=failure.value,
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
            RECORDS.labels(record.topic, outcome).inc()
            return

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self._consumer.commit({tp: offset})
        except KafkaError as exc:  # a rebalance: the records come again and are recognised
            log.warning("consumer_offsets_commit_failed", group=CONSUMER_GROUP, error=str(exc))
