"""The consumer runtime: a FastStream Kafka subscriber driving ``RecordProcessor``.

FastStream gives us the consume loop, reconnects and the AsyncAPI description (``broker``);
the delivery guarantees are ours:

- batch subscriber with ``AckPolicy.MANUAL`` (auto-commit off): offsets are committed only
  after ``RecordProcessor.process`` returned, i.e. once every record of the batch is applied
  (inbox + effects committed) or durably dead-lettered;
- if processing escapes with an error (shutdown, or something the processor could not turn
  into a dead letter), the batch is rewound (``nack`` seeks every partition back to its first
  record of the batch) so nothing is skipped; FastStream itself would log and move on;
- our own parser and decoder keep FastStream from decoding headers or JSON bodies: a malformed
  record must reach the processor (and the dead-letter topic), not fail inside the framework;
  the decoder hands the batch's records to ``_on_batch`` as they are, and the broker runs
  without FastStream's dependency injection (``apply_types=False``): with one argument there
  is nothing to inject, and resolving it cost ~5 % of a service's CPU under the saga load.

A failed commit (broker restart, rebalance) is logged and tolerated: the records come again
and the inbox recognises them as duplicates.

The group also reads its retry topic (``topics.retry_topic(group)``): the monitor re-delivers
this group's dead letters there and nowhere else (``waybill.common.consumer.retries``, ADR
0016). Its producer publishes dead letters and retry outcomes.

Services build their consumer from their subscription table (``EventConsumer.subscribing``,
see ``waybill.common.consumer.subscriptions``): group, topics, registry and dispatch all come
from it. The plain constructor takes them one by one, for tests and benchmarks of the runtime
itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal, Self

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaAckableMessage
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common import topics as topic_names
from waybill.common.backoff import DEFAULT_RETRY, RetryPolicy
from waybill.common.consumer import metrics
from waybill.common.consumer.deadletter import DeadLetterPublisher
from waybill.common.consumer.processor import Handler, RecordProcessor
from waybill.common.consumer.retries import RetryOutcomes
from waybill.common.consumer.subscriptions import Subscriptions
from waybill.common.registry import EventRegistry

log = structlog.get_logger(__name__)


class EventConsumer:
    """One consumer group reading ``topics`` into ``handler``, effectively once."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: list[str],
        engine: AsyncEngine,
        inbox: Table,
        registry: EventRegistry,
        handler: Handler,
        service: str,
        retry: RetryPolicy = DEFAULT_RETRY,
        dead_letter_topic: str = topic_names.DEAD_LETTERS,
        retry_topic: str | None = None,
        retry_outcomes_topic: str = topic_names.RETRY_OUTCOMES,
        poison_switch: bool = False,
        max_batch: int = 500,
        batch_transactions: bool = True,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        commit_interval_s: float = 0.5,
    ) -> None:
        self._group = group_id
        # Offsets are committed at most every ``commit_interval_s`` instead of after every
        # batch: at low rates a batch is one record, and an OffsetCommit per record costs the
        # broker and us more than the record itself. Safe because a commit never runs while a
        # batch is being processed (the lock) and a redelivery after a crash is an inbox
        # duplicate: effects are still durable before their offsets are committed.
        self._commit_interval_s = commit_interval_s
        self._commit_lock = asyncio.Lock()
        # Next offset to consume per partition, recorded only after a batch's effects are
        # durable; commits send exactly these, never the consumer's fetch positions (which run
        # ahead of processing as soon as a fetch returns).
        self._processed: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._service = service
        self._lag: dict[TopicPartition, int] = {}
        retries = retry_topic or topic_names.retry_topic(group_id)
        self._topics = [*topics, retries]
        # Framework chatter per message is noise at INFO; our own events say what happened.
        self._broker = KafkaBroker(
            bootstrap_servers, log_level=logging.DEBUG, graceful_timeout=10.0, apply_types=False
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            client_id=f"{service}-{group_id}-dlq",  # dead letters and retry outcomes
        )
        self._processor = RecordProcessor(
            engine=engine,
            inbox=inbox,
            registry=registry,
            handler=handler,
            group=group_id,
            service=service,
            retry=retry,
            dead_letters=DeadLetterPublisher(
                self._producer, dead_letter_topic, group=group_id, service=service, backoff=retry
            ),
            batch_transactions=batch_transactions,
            retry_topic=retries,
            retry_outcomes=RetryOutcomes(
                self._producer, retry_outcomes_topic, group=group_id, service=service, backoff=retry
            ),
            poison=poison_switch,
        )
        self._subscriber = self._broker.subscriber(
            *self._topics,
            group_id=group_id,
            batch=True,
            max_records=max_batch,
            batch_timeout_ms=200,
            auto_offset_reset=auto_offset_reset,
            ack_policy=AckPolicy.MANUAL,
            parser=self._parse,
            decoder=self._decode,
            no_reply=True,
            title=f"{service}:{group_id}",
        )
        self._subscriber(self._on_batch)

    @classmethod
    def subscribing(
        cls,
        subscriptions: Subscriptions,
        *,
        bootstrap_servers: str,
        engine: AsyncEngine,
        inbox: Table,
        service: str,
        **options: Any,
    ) -> Self:
        """The consumer group of ``subscriptions``: its topics, types and handlers."""
        return cls(
            bootstrap_servers=bootstrap_servers,
            group_id=subscriptions.group,
            topics=subscriptions.topics,
            engine=engine,
            inbox=inbox,
            registry=subscriptions.registry,
            handler=subscriptions.dispatch,
            service=service,
            **options,
        )

    @property
    def broker(self) -> KafkaBroker:
        """The FastStream broker, e.g. for ``faststream.specification.AsyncAPI``."""
        return self._broker

    async def start(self) -> None:
        await self._producer.start()
        await self._broker.start()
        self._flusher = asyncio.create_task(self._flush_periodically(), name="offset-flusher")
        log.info("consumer_start_succeeded", group=self._group, topics=self._topics)

    async def stop(self) -> None:
        try:
            if self._flusher is not None:
                self._flusher.cancel()
                await asyncio.gather(self._flusher, return_exceptions=True)
            await self._commit()
            await self._broker.stop()
        finally:
            await self._producer.stop()
        log.info("consumer_stop_succeeded", group=self._group)

    async def _parse(self, records: tuple[Any, ...]) -> KafkaAckableMessage:
        return KafkaAckableMessage(
            raw_message=records,
            body=b"",
            consumer=self._subscriber.consumer,
            message_id=f"{records[0].topic}-{records[0].partition}-{records[0].offset}"
            if records
            else None,
        )

    async def _decode(self, message: KafkaMessage) -> tuple[Any, ...]:
        # The processor decodes each record itself (and dead-letters bad ones).
        records: tuple[Any, ...] = message.raw_message
        return records

    async def _on_batch(self, records: tuple[Any, ...]) -> None:
        if not records:
            return
        async with self._commit_lock:
            try:
                await self._processor.process(records)
            except BaseException:
                self._rewind(records)  # these records must be consumed again
                log.warning("consumer_batch_rewound", group=self._group, size=len(records))
                raise
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                self._processed[tp] = max(self._processed.get(tp, 0), record.offset + 1)
            if time.monotonic() - self._last_commit >= self._commit_interval_s:
                await self._commit_locked()
        self._update_lag(records)

    def _rewind(self, records: Sequence[Any]) -> None:
        """Seek every partition of the batch back to its first record in the batch."""
        consumer = self._subscriber.consumer
        if consumer is None:
            return
        earliest: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            earliest[tp] = min(earliest.get(tp, record.offset), record.offset)
        for tp, offset in earliest.items():
            consumer.seek(tp, offset)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval_s)
            await self._commit()

    async def _commit(self) -> None:
        async with self._commit_lock:
            await self._commit_locked()

    async def _commit_locked(self) -> None:
        """Commit the offsets of what was processed; only ever called with the lock held."""
        consumer = self._subscriber.consumer
        if not self._processed or consumer is None:
            return
        offsets, self._processed = self._processed, {}
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # e.g. during a rebalance: the inbox absorbs a redelivery
            log.warning("consumer_offsets_commit_failed", group=self._group, error=str(exc))
            for tp, offset in offsets.items():  # try again with the next commit
                self._processed[tp] = max(self._processed.get(tp, 0), offset)
            return
        self._last_commit = time.monotonic()

    def _update_lag(self, records: Sequence[Any]) -> None:
        consumer = self._subscriber.consumer
        if consumer is None:
            return
        positions: dict[TopicPartition, int] = {}
        for record in records:
            positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
        for tp, position in positions.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self._lag[tp] = max(highwater - position, 0)
        # The shared gauge is per topic: the sum over the partitions this member has seen.
        for topic in {tp.topic for tp in positions}:
            total = sum(lag for tp, lag in self._lag.items() if tp.topic == topic)
            metrics.CONSUMER_LAG.labels(self._service, self._group, topic).set(total)
