"""Dead letters: a record that cannot be applied is copied, untouched, to the dead-letter topic.

Key, value and headers are the original ones (so the monitor can re-deliver the record as it
was), plus ``dlq_*`` headers describing the failure. ``dlq_*`` headers left from an earlier
dead-lettering of the same record are replaced, not duplicated.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from waybill.common.backoff import RetryPolicy
from waybill.common.failures import FailureClass

log = structlog.get_logger(__name__)

HEADER_PREFIX = "dlq_"
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Failure:
    """Why and how often a record failed."""

    error: BaseException
    failure_class: FailureClass
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime

    def describe(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"[:_MAX_ERROR_CHARS]


def dead_letter_headers(
    record: Any, failure: Failure, *, group: str, service: str
) -> list[tuple[str, bytes]]:
    """The original headers of ``record`` plus the ``dlq_*`` ones."""
    original = [(k, v) for k, v in record.headers or () if not k.startswith(HEADER_PREFIX)]
    extra = {
        "error": failure.describe(),
        "failure_class": failure.failure_class.value,
        "attempts": str(failure.attempts),
        "first_failed_at": failure.first_failed_at.isoformat(),
        "last_failed_at": failure.last_failed_at.isoformat(),
        "original_topic": record.topic,
        "original_partition": str(record.partition),
        "original_offset": str(record.offset),
        "consumer_group": group,
        "service": service,
    }
    return original + [(HEADER_PREFIX + name, text.encode()) for name, text in extra.items()]


class DeadLetterPublisher:
    """Publishes dead letters and returns only once the broker has them (acks=all)."""

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

    async def publish(self, record: Any, failure: Failure) -> None:
        """Send until durable. The offset is committed after this returns, so giving up here
        would lose the record: while the broker is unreachable we keep trying (the consumer
        cannot make progress then anyway); cancellation (shutdown) ends the loop."""
        headers = dead_letter_headers(record, failure, group=self._group, service=self._service)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._producer.send_and_wait(
                    self._topic, value=record.value, key=record.key, headers=headers
                )
                return
            except KafkaError as exc:
                delay = self._backoff.delay(min(attempt, 16))
                log.warning(
                    "consumer_dead_letter_publish_failed",
                    error=str(exc),
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
