"""Dead letters: a record that cannot be applied is copied, untouched, to the dead-letter topic.

Key, value and headers are the original ones (so the monitor can re-deliver the record as it
was), plus ``dlq_*`` headers describing the failure (the monitor spec's table, ADR 0016): the
error, exception type, stack (truncated), failure type, confidence, remediation, fingerprint,
attempts, first and last failure, where the record was, group and service, and ``retry_of``
when the record failed again while the monitor retried it. ``dlq_*`` headers left from an
earlier dead-lettering or retry of the same record are replaced, not duplicated.
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
from waybill.common.failures import Classification
from waybill.common.failures.fingerprint import consumer_fingerprint, exception_type_name, stack_of

log = structlog.get_logger(__name__)

HEADER_PREFIX = "dlq_"
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Failure:
    """Why and how often a record failed."""

    error: BaseException
    classification: Classification
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    retry_of: str | None = None  # the monitor's dead letter id, when a retry failed again

    def describe(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"[:_MAX_ERROR_CHARS]


def dead_letter_headers(
    record: Any, failure: Failure, *, group: str, service: str
) -> list[tuple[str, bytes]]:
    """The original headers of ``record`` plus the ``dlq_*`` ones."""
    original = [(k, v) for k, v in record.headers or () if not k.startswith(HEADER_PREFIX)]
    classification = failure.classification
    extra = {
        "kind": "consumer",
        "error": failure.describe(),
        "exception_type": exception_type_name(failure.error),
        "stack": stack_of(failure.error),
        "failure_type": classification.type.value,
        "failure_class": classification.type.value,  # the old name, for one release
        "confidence": classification.confidence_text,
        "remediation": classification.remediation.value,
        "fingerprint": consumer_fingerprint(failure.error, topic=record.topic, group=group),
        "attempts": str(failure.attempts),
        "first_failed_at": failure.first_failed_at.isoformat(),
        "last_failed_at": failure.last_failed_at.isoformat(),
        "original_topic": record.topic,
        "original_partition": str(record.partition),
        "original_offset": str(record.offset),
        "consumer_group": group,
        "service": service,
    }
    if failure.retry_of is not None:
        extra["retry_of"] = failure.retry_of
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
        """Send until durable (``send_until_durable``)."""
        headers = dead_letter_headers(record, failure, group=self._group, service=self._service)
        await send_until_durable(
            self._producer,
            self._topic,
            key=record.key,
            value=record.value,
            headers=headers,
            backoff=self._backoff,
        )


async def send_until_durable(
    producer: AIOKafkaProducer,
    topic: str,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    backoff: RetryPolicy,
) -> None:
    """Send until the broker has it (acks=all). The offset of the record this is about is
    committed after this returns, so giving up here would lose it: while the broker is
    unreachable we keep trying (the consumer cannot make progress then anyway); cancellation
    (shutdown) ends the loop."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            return
        except KafkaError as exc:
            delay = backoff.delay(min(attempt, 16))
            log.warning(
                "consumer_record_publish_failed",
                topic=topic,
                error=str(exc),
                attempt=attempt,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
