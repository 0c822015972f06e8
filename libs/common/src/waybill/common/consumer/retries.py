"""Retries of dead letters, re-delivered to the one consumer group that failed them (ADR 0016).

The monitor re-produces a dead letter's original record (key, value or an edited value, the
original non-``dlq_`` headers) to ``waybill.retry.<group>`` with ``dlq_retry_id`` (its dead
letter id) and ``dlq_retry_priority``. Only group ``<group>`` reads that topic, and its records
go through the same processor as any other (inbox, handler, retries), so a retried record
keeps its event id and is applied at most once, and no other group ever sees it.

What became of it goes back to the monitor: applied (or already applied: ``duplicate``) is a
record on ``waybill.retry.outcomes`` keyed by the retry id, published before the retry's
offset is committed (a crash in between re-delivers it, and the inbox answers ``duplicate``);
a failure is a new dead letter with ``dlq_retry_of`` = the retry id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final, Literal

from aiokafka import AIOKafkaProducer

from waybill.common.backoff import RetryPolicy
from waybill.common.consumer.deadletter import send_until_durable

RETRY_ID_HEADER: Final = "dlq_retry_id"
RETRY_PRIORITY_HEADER: Final = "dlq_retry_priority"

Outcome = Literal["applied", "duplicate"]


def retry_id_of(record: Any) -> str | None:
    """The monitor's dead letter id a retried record carries (``dlq_retry_id``), if any."""
    for key, value in record.headers or ():
        if key == RETRY_ID_HEADER:
            return bytes(value).decode(errors="replace")
    return None


class RetryOutcomes:
    """Publishes the outcome of each successful retry, and returns once the broker has it."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        group: str,
        service: str,
        backoff: RetryPolicy,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._group = group
        self._service = service
        self._backoff = backoff

    async def publish(self, retry_id: str, outcome: Outcome) -> None:
        body = {
            "retry_id": retry_id,
            "group": self._group,
            "service": self._service,
            "outcome": outcome,
            "at": datetime.now(UTC).isoformat(),
        }
        await send_until_durable(
            self._producer,
            self._topic,
            key=retry_id.encode(),
            value=json.dumps(body, separators=(",", ":")).encode(),
            headers=[("content-type", b"application/json")],
            backoff=self._backoff,
        )
