"""Sending webhook messages: the ``deliveries`` queue's handler (waybill.common.queue).

Each message is one job, enqueued in the transaction that fanned the event out. Jobs are keyed
by endpoint and order, and the queue is ordered per key: a later event of an order never
overtakes an earlier one still being retried to the same endpoint (the earlier job, waiting
for its retry, holds the key), and other orders (other keys) are not held up. A job's lease
outlives one attempt, so a notifier killed mid-attempt sends the message again after the
lease, with the same ``webhook-id`` (receivers deduplicate on it, as the Standard Webhooks
spec says they should).

One attempt: sign with the ``standardwebhooks`` library (every secret still valid: after a
rotation both signatures, space-separated), POST through the SSRF-checked client (the address
checked is the address connected to; no redirects), record the attempt, and decide in one
transaction: 2xx -> succeeded; 410 -> the endpoint is disabled at once; a failure after the
schedule's last attempt, or an endpoint without a success for ``disable_after`` -> failed.
Each final outcome (and each disabling) is an event of the endpoint's stream; a failed message
is also a dead letter of kind ``delivery`` on ``waybill.dlq`` (its retry is a replay).

One endpoint cannot hold up the others: it gets at most ``endpoint_concurrency`` of the
worker's slots at once, its circuit breaker stops attempts to a host that keeps failing (the
messages wait, their attempts unspent), and its ``rate_limit_per_s`` is a sliding window kept
in its row, shared by every replica. Those waits are not attempts: the schedule counts the
message's attempts, not the job's claims.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks import Webhook

from waybill.common import topics
from waybill.common.breaker import BreakerOpen, CircuitBreakers
from waybill.common.consumer.deadletter import HEADER_PREFIX
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.notifier import (
    WebhookDeliveryFailed,
    WebhookDeliverySucceeded,
    WebhookEndpointDisabled,
)
from waybill.common.eventstore import Caller, EventStore, append_decided
from waybill.common.failures.fingerprint import delivery_fingerprint
from waybill.common.http.outbound import UnresolvableTarget, UnsafeTarget
from waybill.common.observability.integrations import OK, record_call
from waybill.common.queue import Job, JobQueue, Outcome, QueueSpec, RetryLater
from waybill.notifier import repository as db
from waybill.notifier.domain.endpoints import signing_secrets
from waybill.notifier.domain.schedule import (
    Schedule,
    counts_against_breaker,
    disables_endpoint,
    error_class,
    failure_of,
    is_success,
)
from waybill.notifier.metrics import (
    SERVICE,
    WEBHOOK_ATTEMPT_DURATION,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_MESSAGES,
    WEBHOOK_WAITS,
    WEBHOOKS,
)

log = structlog.get_logger(__name__)

QUEUE = "deliveries"
EXCERPT_CHARS = 2048
# An endpoint with every slot of its own busy: look again after about this long.
BUSY_WAIT_S = 0.5
# The consumer group a delivery dead letter names (the monitor's filters and groups).
DELIVERY_GROUP = "notifier-deliveries"


def deliveries_queue(engine: AsyncEngine, schedule: Schedule, *, timeout_s: float) -> JobQueue:
    return JobQueue(
        engine,
        QueueSpec(
            name=QUEUE,
            lease_s=timeout_s + 10,
            ordered=True,
            # Attempts are the message's (a wait for the rate limit or the breaker claims the
            # job without an attempt), so the queue itself never gives up on a claim count.
            max_attempts=None,
            backoff=schedule,
        ),
    )


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    failure: str | None  # an error class when there was no HTTP answer
    excerpt: str | None
    retry_after_s: float | None
    latency_ms: float


class _Unhealthy(Exception):  # a signal to the breaker, not an error
    """An answer the breaker counts as a failure (no answer, or 5xx)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer


@dataclass
class DeliverySender:
    queue: JobQueue
    store: EventStore
    client: httpx.AsyncClient
    schedule: Schedule
    breakers: CircuitBreakers
    disable_after: timedelta = timedelta(days=5)
    endpoint_concurrency: int = 4
    max_response_bytes: int = 65536
    _in_flight: dict[str, int] = field(default_factory=dict)

    async def deliver(self, job: Job) -> Outcome | None:
        """One attempt of a message, or a wait without an attempt: the endpoint already has
        ``endpoint_concurrency`` attempts in flight here, its rate limit's window is full, or
        its breaker is open. Attempts are counted by the message (``attempts``: this round's),
        not by the job, whose claims include those waits."""
        message_id: str = job.payload["message_id"]
        engine = self.queue.engine
        async with engine.connect() as conn:
            message = await db.message_to_send(conn, message_id)
        if message is None or message.message_status != "pending":
            return None  # deleted with its endpoint, or already settled (a lapsed lease)
        if message.endpoint_status != "active":
            async with engine.begin() as conn:
                await self._finish(conn, job, message, "failed", attempts=message.attempts)
            return Outcome.completed_in_transaction
        endpoint = message.endpoint_id
        if self._in_flight.get(endpoint, 0) >= self.endpoint_concurrency:
            WEBHOOK_WAITS.labels("busy").inc()
            raise RetryLater("endpoint busy", delay_s=BUSY_WAIT_S * random.uniform(1, 1.5))
        self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
        try:
            now = datetime.now(UTC)
            if message.rate_limit_per_s is not None:
                async with engine.begin() as conn:
                    wait, now = await db.reserve_start(conn, endpoint, now)
                if wait > 0:
                    WEBHOOK_WAITS.labels("rate_limited").inc()
                    raise RetryLater("rate limited", delay_s=wait)
            try:
                answer = await self._guarded_post(message, now)
            except BreakerOpen as exc:
                WEBHOOK_WAITS.labels("circuit_open").inc()
                delay = self.breakers.reset_s * random.uniform(1, 1.2)
                raise RetryLater("circuit open", delay_s=delay) from exc
        finally:
            self._in_flight[endpoint] -= 1
            if not self._in_flight[endpoint]:
                del self._in_flight[endpoint]
        await self._settle(job, message, answer, now)
        return Outcome.completed_in_transaction

    async def _guarded_post(self, message: Any, now: datetime) -> Answer:
        try:
            async with await self.breakers.guard(f"webhook:{message.endpoint_id}"):
                answer = await self._post(message, now)
                if counts_against_breaker(answer.status_code, answer.failure):
                    raise _Unhealthy(answer)
        except _Unhealthy as unhealthy:
            return unhealthy.answer
        return answer

    async def _settle(self, job: Job, message: Any, answer: Answer, now: datetime) -> None:
        """Record the attempt and decide, in one transaction: succeeded, endpoint disabled
        (410, or no success for ``disable_after``), failed (the schedule's last), or retry."""
        attempt = message.attempts + 1
        ok = is_success(answer.status_code) and answer.failure is None
        outcome = error_class(answer.status_code, answer.failure) or OK
        WEBHOOK_ATTEMPTS.labels(outcome).inc()
        WEBHOOK_ATTEMPT_DURATION.observe(answer.latency_ms / 1000)
        record_call(SERVICE, WEBHOOKS, outcome, answer.latency_ms / 1000)
        gone = disables_endpoint(answer.status_code)
        silent_since = message.last_success_at or message.endpoint_created_at
        stale = not ok and now - silent_since > self.disable_after
        last = attempt >= self.schedule.max_attempts
        retry_in = None
        async with self.queue.engine.begin() as conn:
            await db.record_attempt(
                conn,
                {
                    "message_id": message.message_id,
                    "attempt": attempt,
                    "at": now,
                    "status_code": answer.status_code,
                    "latency_ms": answer.latency_ms,
                    "error_class": error_class(answer.status_code, answer.failure),
                    "response_excerpt": answer.excerpt,
                },
            )
            if ok:
                await self._finish(conn, job, message, "succeeded", attempts=attempt)
            elif gone or stale:
                reason = "410 Gone" if gone else f"no success for {_span(self.disable_after)}"
                await self._disable(conn, message, reason)
                await self._finish(conn, job, message, "failed", attempts=attempt, answer=answer)
            elif last:
                await self._finish(conn, job, message, "failed", attempts=attempt, answer=answer)
            else:
                retry_in = self.schedule.delay(attempt, answer.retry_after_s)
                await db.update_message(
                    conn,
                    message.message_id,
                    {"attempts": attempt, "next_attempt_at": now + timedelta(seconds=retry_in)},
                )
                await self.queue.reschedule_in(conn, job, retry_in, _describe(answer))
        if retry_in is not None:
            log.info(
                "webhook_delivery_retry_scheduled",
                message_id=message.message_id,
                attempt=attempt,
                status_code=answer.status_code,
                error_class=error_class(answer.status_code, answer.failure),
                retry_in_s=round(retry_in, 1),
            )

    async def _post(self, message: Any, now: datetime) -> Answer:
        body = json.dumps(message.body, separators=(",", ":"))
        keys = signing_secrets(
            message.secret, message.previous_secret, message.previous_secret_expires_at, now
        )
        signature = " ".join(
            Webhook(key).sign(msg_id=message.message_id, timestamp=now, data=body) for key in keys
        )
        headers = {
            **message.headers,
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        started = time.perf_counter()
        request = self.client.build_request("POST", message.url, content=body, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
            try:
                excerpt, too_large = await self._read_capped(response)
            finally:
                await response.aclose()
        except UnsafeTarget as exc:
            return self._failed("unsafe_address", started, str(exc))
        except UnresolvableTarget as exc:
            return self._failed("dns", started, str(exc))
        except httpx.TimeoutException as exc:
            return self._failed("timeout", started, repr(exc))
        except httpx.ConnectError as exc:
            kind = "tls" if "CERTIFICATE" in str(exc) or "SSL" in str(exc) else "connect"
            return self._failed(kind, started, repr(exc))
        except httpx.HTTPError as exc:
            return self._failed("connect", started, repr(exc))
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return Answer(
            response.status_code,
            "too_large" if too_large else None,
            excerpt,
            _retry_after(response),
            latency_ms,
        )

    async def _read_capped(self, response: httpx.Response) -> tuple[str, bool]:
        """The answer's first ``EXCERPT_CHARS`` characters, and whether it exceeded
        ``max_response_bytes`` (read no further: a receiver streaming megabytes back must not
        tie up a worker)."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            return "", True
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                return b"".join(chunks).decode(errors="replace")[:EXCERPT_CHARS], True
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")[:EXCERPT_CHARS], False

    @staticmethod
    def _failed(kind: str, started: float, detail: str) -> Answer:
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return Answer(None, kind, detail[:EXCERPT_CHARS], None, latency_ms)

    async def _finish(
        self,
        conn: AsyncConnection,
        job: Job,
        message: Any,
        status: str,
        *,
        attempts: int,
        answer: Answer | None = None,
    ) -> None:
        now = datetime.now(UTC)
        await db.update_message(
            conn,
            message.message_id,
            {"status": status, "attempts": attempts, "next_attempt_at": None, "finished_at": now},
        )
        WEBHOOK_MESSAGES.labels(status).inc()
        event: DomainEvent
        if status == "succeeded":
            await db.update_endpoint(
                conn, message.tenant_id, message.endpoint_id, {"last_success_at": now}
            )
            event = WebhookDeliverySucceeded(
                endpoint_id=message.endpoint_id,
                message_id=message.message_id,
                event_type_delivered=message.event_type,
                attempts=attempts,
            )
            await self.queue.complete_in(conn, job)
        else:
            event = WebhookDeliveryFailed(
                endpoint_id=message.endpoint_id,
                message_id=message.message_id,
                event_type_delivered=message.event_type,
                attempts=attempts,
                error_class=error_class(answer.status_code, answer.failure) if answer else None,
                status_code=answer.status_code if answer else None,
            )
            await self.queue.fail_in(conn, job, f"webhook message {status}")
            log.warning("webhook_delivery_failed", message_id=message.message_id, attempts=attempts)
        await self._append(conn, message, [event])
        if status == "failed":
            await self._dead_letter(conn, message, attempts, answer, now)

    async def _dead_letter(
        self,
        conn: AsyncConnection,
        message: Any,
        attempts: int,
        answer: Answer | None,
        now: datetime,
    ) -> None:
        """The failed message as a dead letter of kind ``delivery`` (CONTRACT.md § monitor), in
        the transaction that failed it: key the message id, value the body a receiver gets,
        CloudEvents headers of the event delivered, and ``dlq_*`` headers like a consumer's
        dead letter's plus the delivery's ids (the monitor retries it as a replay)."""
        error = error_class(answer.status_code, answer.failure) if answer else "disabled"
        status_code = answer.status_code if answer else None
        described = "endpoint disabled" if answer is None else _describe(answer)
        first = await db.first_attempt_at(conn, message.message_id)
        failure = failure_of(error, status_code)
        headers = {
            "ce_id": str(message.event_id),
            "ce_type": message.event_type,
            "ce_subject": message.subject,
            "ce_tenantid": message.tenant_id,
            "ce_source": "/waybill/notifier",
            "content-type": "application/json",
        }
        extra = {
            "kind": "delivery",
            "service": "notifier",
            "consumer_group": DELIVERY_GROUP,
            "error": described,
            "error_class": error or "",
            "status_code": "" if status_code is None else str(status_code),
            "failure_type": failure.type.value,
            "failure_class": failure.type.value,  # the old name, for one release (ADR 0016)
            "confidence": failure.confidence_text,
            "remediation": failure.remediation.value,
            "fingerprint": delivery_fingerprint(
                error_class=error or "", endpoint_id=str(message.endpoint_id)
            ),
            "attempts": str(attempts),
            "first_failed_at": (first or now).isoformat(),
            "last_failed_at": now.isoformat(),
            "delivery_id": message.message_id,
            "endpoint_id": message.endpoint_id,
        }
        rows = [*headers.items(), *((HEADER_PREFIX + k, v) for k, v in extra.items())]
        await db.insert_outbox_record(
            conn,
            uuid.uuid4(),
            topics.DEAD_LETTERS,
            message.message_id.encode(),
            json.dumps(message.body, separators=(",", ":")).encode(),
            [[name, value] for name, value in rows],
        )

    async def _disable(self, conn: AsyncConnection, message: Any, reason: str) -> None:
        await db.update_endpoint(
            conn,
            message.tenant_id,
            message.endpoint_id,
            {"status": "disabled", "disabled_reason": reason, "updated_at": datetime.now(UTC)},
        )
        await self._append(
            conn, message, [WebhookEndpointDisabled(endpoint_id=message.endpoint_id, reason=reason)]
        )
        log.warning("webhook_endpoint_disabled", endpoint_id=message.endpoint_id, reason=reason)

    async def _append(
        self, conn: AsyncConnection, message: Any, events: Sequence[DomainEvent]
    ) -> None:
        version = await db.lock_endpoint_version(conn, message.endpoint_id)
        assert version is not None
        await append_decided(
            self.store,
            conn,
            Caller(tenant_id=message.tenant_id, correlation_id=message.message_id),
            stream_id=message.endpoint_id,
            stream_type="webhook_endpoint",
            expected_version=version,
            events=events,
        )
        await db.update_endpoint(
            conn, message.tenant_id, message.endpoint_id, {"version": version + len(events)}
        )


def _span(span: timedelta) -> str:
    """``5 days``, ``6 hours``, ``90 s``: a disable reason people read."""
    seconds = span.total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _describe(answer: Answer) -> str:
    if answer.failure is not None and answer.status_code is None:
        return f"{answer.failure}: {answer.excerpt or ''}"[:500]
    return f"HTTP {answer.status_code}" + (f" ({answer.failure})" if answer.failure else "")


def _retry_after(response: httpx.Response) -> float | None:
    """A 429 or 503's ``Retry-After`` in seconds (the HTTP-date form is rare for webhooks)."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
