"""Applying consumed records: inbox + handler in one transaction, retries, dead letters.

Kafka-client agnostic: it receives records (anything with topic, partition, offset, key, value,
headers) and returns once every one of them is either applied, a known duplicate, skipped
(a type nobody subscribed to) or durably dead-lettered. Only then may the caller commit their
offsets.

A record whose ``ce_type`` header names a type the registry does not know is skipped before
anything else: no JSON decoding, no model validation, no inbox row, no transaction (most
records on a topic are for other consumers). A record without the header is decoded, fails,
and is dead-lettered like any other malformed record.

While the consumer's own database is unreachable, failures do not count against a record's
retry budget: the processor pauses on it until the database answers (``pause``).

A batch is applied in one transaction (one inbox statement, then the handler per record) for
throughput. If that transaction fails, it is rolled back and every record is applied again on
its own, in order, with retries, so one bad record cannot fail its neighbours. A handler is
therefore called once more per record in that case; handlers with effects outside the database
must make them idempotent anyway (retries call them again too) or run with batching off.

Records from the group's retry topic (``waybill.retry.<group>``, the monitor's retries of this
group's dead letters, ``retries``) are applied one at a time, like the slow path: success
publishes the retry's outcome, failure dead-letters the record again with ``retry_of``.

With the test poison switch on (``poison``), a handler call for an event poisoned for this
group raises ``PoisonEvent`` instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Literal

import structlog
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog.contextvars import bound_contextvars
from tenacity import RetryCallState

from waybill.common.backoff import RetryPolicy, retrying
from waybill.common.consumer import inbox as inbox_rows
from waybill.common.consumer import metrics
from waybill.common.consumer.deadletter import DeadLetterPublisher, Failure
from waybill.common.consumer.pause import DependencyPause
from waybill.common.consumer.poison import raise_if_poisoned
from waybill.common.consumer.retries import RetryOutcomes, retry_id_of
from waybill.common.envelope import EventEnvelope
from waybill.common.failures import Classification, FailureType, is_retryable
from waybill.common.failures.classify import classify
from waybill.common.failures.taxonomy import DECLARED
from waybill.common.observability.tracing import consumer_span
from waybill.common.registry import EventRegistry

log = structlog.get_logger(__name__)

Handler = Callable[[AsyncConnection, EventEnvelope, BaseModel], Awaitable[None]]

# A record that does not decode never will: the runtime knows that for sure.
_UNDECODABLE = Classification.of(FailureType.PERMANENT_INVALID_INPUT, DECLARED)


@dataclass(frozen=True)
class _Event:
    record: Any
    envelope: EventEnvelope
    payload: BaseModel

    def log_context(self) -> dict[str, Any]:
        return {
            "event_id": str(self.envelope.id),
            "event_type": self.envelope.type,
            "tenant_id": self.envelope.tenant_id,
            "correlation_id": self.envelope.correlation_id,
            "topic": self.record.topic,
            "partition": self.record.partition,
            "offset": self.record.offset,
        }


class RecordProcessor:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        inbox: Table,
        registry: EventRegistry,
        handler: Handler,
        group: str,
        service: str,
        retry: RetryPolicy,
        dead_letters: DeadLetterPublisher,
        batch_transactions: bool = True,
        pause: DependencyPause | None = None,
        retry_topic: str | None = None,
        retry_outcomes: RetryOutcomes | None = None,
        poison: bool = False,
    ) -> None:
        self._engine = engine
        self._inbox = inbox
        self._registry = registry
        self._handler = handler
        self._group = group
        self._service = service
        self._retry = retry
        self._dead_letters = dead_letters
        self._batch_transactions = batch_transactions
        self._pause = pause or DependencyPause(engine, group=group)
        self._retry_topic = retry_topic
        self._retry_outcomes = retry_outcomes
        self._poison = poison

    async def process(self, records: Sequence[Any]) -> None:
        """Apply, skip or dead-letter every record; returns when all outcomes are durable."""
        retried = [r for r in records if r.topic == self._retry_topic]
        if retried:
            await self._process_fresh([r for r in records if r.topic != self._retry_topic])
            for record in retried:
                await self._apply_retried(record)
            return
        await self._process_fresh(records)

    async def _process_fresh(self, records: Sequence[Any]) -> None:
        decoded = [(record, self._decode(record)) for record in records]
        events = [item for _, item in decoded if isinstance(item, _Event)]
        undecodable = any(isinstance(item, Failure) for _, item in decoded)
        # Records that do not decode go the slow way with the rest, so the dead-letter topic
        # keeps the partition's order.
        batchable = self._batch_transactions and not undecodable and len(events) > 1
        if batchable and await self._apply_batch(events):
            return
        for record, item in decoded:
            if isinstance(item, _Event):
                await self._apply_with_retry(item)
            elif isinstance(item, Failure):
                await self._dead_letter(record, item)

    def _decode(self, record: Any) -> _Event | Failure | None:
        """The typed event; a ``Failure`` if it does not parse; None for an unknown type."""
        event_type = _header(record, "ce_type")
        if event_type is not None and not self._registry.knows(event_type):
            self._count(record, "skipped")
            return None
        try:
            envelope = EventEnvelope.from_kafka(record.value or b"", list(record.headers or ()))
            payload = self._registry.parse(envelope)
        except Exception as exc:
            # Decoding is deterministic: a record that does not parse never will.
            now = datetime.now(UTC)
            return Failure(exc, _UNDECODABLE, 1, now, now)
        if payload is None:
            self._count(record, "skipped")
            log.debug("consumer_record_skipped", event_type=envelope.type, topic=record.topic)
            return None
        return _Event(record, envelope, payload)

    async def _apply_batch(self, events: list[_Event]) -> bool:
        """All of ``events`` in one transaction; False (and nothing written) if it failed."""
        outcomes: list[str] = []
        try:
            async with self._engine.begin() as conn:
                fresh = await inbox_rows.record_many(
                    conn,
                    self._inbox,
                    self._group,
                    [e.envelope.id for e in events],
                    service=self._service,
                )
                for event in events:
                    if event.envelope.id in fresh:
                        fresh.discard(event.envelope.id)  # the same event twice in one batch
                        await self._call_handler(conn, event)
                        outcomes.append("applied")
                    else:
                        outcomes.append("duplicate")
        except Exception as exc:
            log.info(
                "consumer_batch_failed",
                size=len(events),
                failure_type=classify(exc).type.value,
                error=str(exc),
            )
            return False
        for event, outcome in zip(events, outcomes, strict=True):
            self._count(event.record, outcome)
        return True

    async def _apply_one(self, event: _Event) -> Literal["applied", "duplicate"]:
        async with self._engine.begin() as conn:
            if not await inbox_rows.record(
                conn, self._inbox, self._group, event.envelope.id, service=self._service
            ):
                return "duplicate"
            await self._call_handler(conn, event)
            return "applied"

    async def _apply_while_reachable(self, event: _Event) -> Literal["applied", "duplicate"]:
        """``_apply_one``, tried again without spending an attempt for as long as its failures
        are the database's (``DependencyPause``)."""
        refreshed = False
        while True:
            try:
                return await self._apply_one(event)
            except Exception as exc:
                if not is_retryable(classify(exc).type):
                    raise
                if not await self._pause.absorbs(exc, refreshed=refreshed):
                    raise
                refreshed = True

    async def _apply_retried(self, record: Any) -> None:
        """A record the monitor retried to this group: applied or dead-lettered again."""
        retry_id = retry_id_of(record)
        item = self._decode(record)
        if isinstance(item, Failure):
            await self._dead_letter(record, replace(item, retry_of=retry_id))
            return
        if item is None:  # a type this group does not consume: nothing to apply, ever
            log.warning("consumer_retry_skipped", retry_id=retry_id, topic=record.topic)
            return
        outcome = await self._apply_with_retry(item, retry_of=retry_id)
        if outcome == "dead_lettered" or retry_id is None or self._retry_outcomes is None:
            return
        await self._retry_outcomes.publish(retry_id, outcome)
        with bound_contextvars(**item.log_context()):
            log.info("consumer_retry_succeeded", retry_id=retry_id, outcome=outcome)

    async def _apply_with_retry(
        self, event: _Event, *, retry_of: str | None = None
    ) -> Literal["applied", "duplicate", "dead_lettered"]:
        attempts = 0
        failed_at: list[datetime] = []

        def on_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            failure_type = classify(exc).type.value if exc else FailureType.UNKNOWN.value
            metrics.HANDLER_RETRIES.labels(self._service, self._group, failure_type).inc()
            with bound_contextvars(**event.log_context()):
                log.warning(
                    "consumer_record_retry_scheduled",
                    attempt=state.attempt_number,
                    failure_type=failure_type,
                    error=str(exc),
                    retry_in_s=round(state.upcoming_sleep, 3),
                )

        try:
            async for attempt in retrying(self._retry, on_retry):
                with attempt:
                    attempts += 1
                    try:
                        outcome = await self._apply_while_reachable(event)
                    except Exception:
                        failed_at.append(datetime.now(UTC))
                        raise
        except Exception as exc:
            now = datetime.now(UTC)
            first, last = (failed_at[0], failed_at[-1]) if failed_at else (now, now)
            failure = Failure(exc, classify(exc), attempts, first, last, retry_of)
            await self._dead_letter(event.record, failure)
            return "dead_lettered"
        self._count(event.record, outcome)
        return outcome

    async def _call_handler(self, conn: AsyncConnection, event: _Event) -> None:
        # Bound for the handler's own log lines too. The span continues the producer's trace
        # (traceparent header) and is current while the handler runs, so what the handler
        # appends or enqueues is its child: one trace, a tree, across the saga.
        with (
            bound_contextvars(**event.log_context()),
            consumer_span(event.record, self._group),
        ):
            started = perf_counter()
            try:
                if self._poison:
                    raise_if_poisoned(event.envelope, self._group)
                await self._handler(conn, event.envelope, event.payload)
            finally:
                metrics.HANDLER_DURATION.labels(
                    self._service, self._group, event.envelope.type
                ).observe(perf_counter() - started)

    async def _dead_letter(self, record: Any, failure: Failure) -> None:
        log.error(
            "consumer_record_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_id=_header(record, "ce_id"),
            tenant_id=_header(record, "ce_tenantid"),
            correlation_id=_header(record, "ce_correlationid"),
            failure_type=failure.classification.type.value,
            confidence=failure.classification.confidence,
            attempts=failure.attempts,
            retry_of=failure.retry_of,
            error=failure.describe(),
        )
        await self._dead_letters.publish(record, failure)
        metrics.DEAD_LETTERS.labels(
            self._service, self._group, failure.classification.type.value
        ).inc()
        self._count(record, "dead_lettered")

    def _count(self, record: Any, outcome: str) -> None:
        metrics.RECORDS.labels(self._service, self._group, record.topic, outcome).inc()
        if outcome == "duplicate":
            log.info(
                "consumer_record_duplicate_skipped",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                event_id=_header(record, "ce_id"),
            )


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None
