"""Sending webhook deliveries: the "webhooks" queue's handler (waybill.common.queue).

Each delivery is one job, enqueued with the event that it sends (``webhooks.emit``); the
queue's lease makes a delivery whose sender died (a restart) go out again once the lease runs
out: at-least-once, as with any real provider. An attempt is recorded, with the delivery's
new status and the job's outcome, in one transaction. A failed attempt is retried after 1, 2,
4, ... seconds (the queue's backoff, capped at ``MAX_BACKOFF_S``) until the delivery is
``sandbox_webhook_max_age_s`` old (the job's deadline), then it is ``failed``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.backoff import Backoff, Jitter
from waybill.common.queue import Job, JobQueue, Outcome, QueueSpec, RetryLater
from waybill.sandbox import signing
from waybill.sandbox.tables import webhook_attempts, webhook_deliveries

log = structlog.get_logger(__name__)

QUEUE = "webhooks"
MAX_BACKOFF_S = 60.0


def webhook_queue(
    engine: AsyncEngine, *, timeout_s: float, retry_base_s: float, max_attempts: int | None = None
) -> JobQueue:
    """The deliveries' queue: a lease outlives one attempt; no jitter (a simulator's retry
    times are easier to read in a test)."""
    return JobQueue(
        engine,
        QueueSpec(
            name=QUEUE,
            lease_s=timeout_s + 5,
            max_attempts=max_attempts,
            backoff=Backoff(base_s=retry_base_s, max_s=MAX_BACKOFF_S, jitter=Jitter.NONE),
        ),
    )


class WebhookSender:
    """Posts one delivery per job (one shared httpx client)."""

    def __init__(
        self,
        queue: JobQueue,
        client: httpx.AsyncClient,
        *,
        url: str,
        secret: str,
        timeout_s: float,
    ) -> None:
        self.queue = queue
        self.client = client
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s

    async def deliver(self, job: Job) -> Outcome:
        delivery_id: int = job.payload["delivery_id"]
        body = str(job.payload["body"]).encode()
        started = time.perf_counter()
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            signing.HEADER: signing.sign(self.secret, body, int(time.time())),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self.client.post(
                self.url, content=body, headers=headers, timeout=self.timeout_s
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        duration_ms = int((time.perf_counter() - started) * 1000)
        ok = status_code is not None and 200 <= status_code < 300
        retry_in = None if ok else self.queue.spec.backoff.delay(job.attempts, None)
        gives_up = retry_in is not None and (
            job.deadline is None or at + timedelta(seconds=retry_in) > job.deadline
        )
        status = "delivered" if ok else "failed" if gives_up else "pending"
        async with self.queue.engine.begin() as conn:
            await self._record(conn, job, status, at, status_code, error, duration_ms)
            if ok:
                await self.queue.complete_in(conn, job)
            elif gives_up:
                await self.queue.fail_in(conn, job, error or f"HTTP {status_code}")
        if not ok:
            log.info(
                "sandbox_webhook_delivery_failed",
                delivery_id=delivery_id,
                attempt=job.attempts,
                status_code=status_code,
                error=error,
                next_status=status,
            )
        if status == "pending":
            assert retry_in is not None
            raise RetryLater(error or f"HTTP {status_code}", delay_s=retry_in)
        return Outcome.completed_in_transaction

    @staticmethod
    async def _record(
        conn: AsyncConnection,
        job: Job,
        status: str,
        at: datetime,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
    ) -> None:
        delivery_id = job.payload["delivery_id"]
        await conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery_id)
            .values(status=status, attempts=job.attempts)
        )
        await conn.execute(
            insert(webhook_attempts).values(
                delivery_id=delivery_id,
                at=at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
            )
        )
