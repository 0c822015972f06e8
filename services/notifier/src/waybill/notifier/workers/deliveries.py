"""Sending webhook messages: the ``deliveries`` queue's handler (waybill.common.queue).

Each message is one job, enqueued in the transaction that fanned the event out. Jobs are keyed
by endpoint and order and processed serially per key: a later event of an order never
overtakes an earlier one still being retried to the same endpoint, and other orders (other
keys) are not held up. A job's lease outlives one attempt, so a notifier killed mid-attempt
sends the message again after the lease, with the same ``webhook-id`` (receivers deduplicate
on it, as the Standard Webhooks spec says they should).

One attempt: sign with the ``standardwebhooks`` library (every secret still valid: after a
rotation both signatures, space-separated), POST through the SSRF-checked client (the address
checked is the address connected to; no redirects), record the attempt, and decide in one
transaction: 2xx -> succeeded; 410 -> the endpoint is disabled at once; a failure after the
schedule's last attempt, or an endpoint without a success for ``disable_after`` -> failed.
Each final outcome (and each disabling) is an event of the endpoint's stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks import Webhook

from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.notifier import (
    WebhookDeliveryFailed,
    WebhookDeliverySucceeded,
    WebhookEndpointDisabled,
)
from waybill.common.eventstore import Caller, EventStore, append_decided
from waybill.common.http.outbound import UnresolvableTarget, UnsafeTarget
from waybill.common.queue import Job, JobQueue, Outcome, QueueSpec, RetryLater
from waybill.notifier import repository as db
from waybill.notifier.domain.endpoints import signing_secrets
from waybill.notifier.domain.schedule import Schedule, disables_endpoint, error_class, is_success

log = structlog.get_logger(__name__)

QUEUE = "deliveries"
EXCERPT_CHARS = 2048


def deliveries_queue(engine: AsyncEngine, schedule: Schedule, *, timeout_s: float) -> JobQueue:
    return JobQueue(
        engine,
        QueueSpec(
            name=QUEUE,
            lease_s=timeout_s + 10,
            serial=True,
            max_attempts=schedule.max_attempts,
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


@dataclass
class DeliverySender:
    queue: JobQueue
    store: EventStore
    client: httpx.AsyncClient
    schedule: Schedule
    disable_after: timedelta = timedelta(days=5)

    async def deliver(self, job: Job) -> Outcome:
        message_id: str = job.payload["message_id"]
        engine = self.queue.engine
        async with engine.connect() as conn:
            message = await db.message_to_send(conn, message_id)
        if message is None or message.message_status != "pending":
            return Outcome.completed_in_transaction if message is None else self._done()
        now = datetime.now(UTC)
        if message.endpoint_status != "active":
            async with engine.begin() as conn:
                await self._finish(conn, job, message, "failed", attempts=job.attempts - 1)
            return Outcome.completed_in_transaction
        answer = await self._post(message, now)
        ok = is_success(answer.status_code)
        gone = disables_endpoint(answer.status_code)
        silent_since = message.last_success_at or message.endpoint_created_at
        stale = not ok and now - silent_since > self.disable_after
        last = job.attempts >= self.schedule.max_attempts
        retry_in = None
        async with engine.begin() as conn:
            await db.record_attempt(
                conn,
                {
                    "message_id": message_id,
                    "attempt": job.attempts,
                    "at": now,
                    "status_code": answer.status_code,
                    "latency_ms": answer.latency_ms,
                    "error_class": error_class(answer.status_code, answer.failure),
                    "response_excerpt": answer.excerpt,
                },
            )
            if ok:
                await self._finish(conn, job, message, "succeeded", attempts=job.attempts)
            elif gone or stale:
                reason = "410 Gone" if gone else f"no success for {self.disable_after}"
                await self._disable(conn, message, reason)
                await self._finish(conn, job, message, "failed", attempts=job.attempts)
            elif last:
                await self._finish(
                    conn, job, message, "failed", attempts=job.attempts, answer=answer
                )
            else:
                retry_in = self.schedule.delay(job.attempts, answer.retry_after_s)
                await db.update_message(
                    conn,
                    message_id,
                    {
                        "attempts": job.attempts,
                        "next_attempt_at": now + timedelta(seconds=retry_in),
                    },
                )
        if retry_in is not None:
            log.info(
                "webhook_delivery_retry_scheduled",
                message_id=message_id,
                attempt=job.attempts,
                status_code=answer.status_code,
                error_class=error_class(answer.status_code, answer.failure),
                retry_in_s=round(retry_in, 1),
            )
            raise RetryLater(answer.failure or f"HTTP {answer.status_code}", delay_s=retry_in)
        return Outcome.completed_in_transaction

    def _done(self) -> Outcome:
        return Outcome.completed_in_transaction

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
        try:
            response = await self.client.post(message.url, content=body, headers=headers)
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
            None,
            response.text[:EXCERPT_CHARS],
            _retry_after(response),
            latency_ms,
        )

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


def _retry_after(response: httpx.Response) -> float | None:
    """A 429 or 503's ``Retry-After`` in seconds (the HTTP-date form is rare for webhooks)."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
