"""Sending webhook deliveries: claimed in batches from the database, posted concurrently.

A claim moves ``next_attempt_at`` forward by a lease, so a delivery whose sender died (a
restart) is picked up again once the lease runs out: at-least-once, as with any real
provider. Results are written back in batches. A failed attempt is retried after 1, 2, 4, ...
seconds until the delivery is ``sandbox_webhook_max_age_s`` old, then it is ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.sandbox import signing
from waybill.sandbox.tables import webhook_attempts, webhook_deliveries, webhook_events

log = structlog.get_logger(__name__)

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class _Claimed:
    id: int
    attempts: int
    expires_at: datetime
    body: str


@dataclass(frozen=True)
class _Result:
    delivery: _Claimed
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDeliverer:
    """The delivery loop of the sandbox process (one shared httpx client)."""

    def __init__(
        self,
        engine: AsyncEngine,
        client: httpx.AsyncClient,
        *,
        url: str,
        secret: str,
        concurrency: int,
        timeout_s: float,
        retry_base_s: float,
        tick_s: float,
    ) -> None:
        self.engine = engine
        self.client = client
        self.url = url
        self.secret = secret
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry_base_s = retry_base_s
        self.tick_s = tick_s
        self.lease = timedelta(seconds=timeout_s + 5)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._results: list[_Result] = []

    def wake(self) -> None:
        """New deliveries were committed (or results are waiting): don't wait for the tick."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self._flush_results()
                free = self.concurrency - len(self._in_flight)
                claimed = await self._claim(free) if free > 0 else []
                for delivery in claimed:
                    task = asyncio.create_task(self._send(delivery))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                if claimed and len(claimed) == free:
                    continue  # there may be more due right now
            except (SQLAlchemyError, OSError) as exc:
                log.warning("sandbox_webhook_poll_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
            self._wake.clear()

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the loop and the sends in flight; write back what already finished."""
        task.cancel()
        for sending in list(self._in_flight):
            sending.cancel()
        await asyncio.gather(task, *self._in_flight, return_exceptions=True)
        try:
            await self._flush_results()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("sandbox_webhook_flush_failed", error=str(exc))

    async def _claim(self, limit: int) -> list[_Claimed]:
        now = datetime.now(UTC)
        d = webhook_deliveries
        due = (
            select(d.c.id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(d)
                    .where(d.c.id.in_(due.scalar_subquery()), d.c.event_id == webhook_events.c.id)
                    .values(next_attempt_at=now + self.lease, attempts=d.c.attempts + 1)
                    .returning(d.c.id, d.c.attempts, d.c.expires_at, webhook_events.c.body)
                )
            ).all()
        return [_Claimed(r.id, r.attempts, r.expires_at, r.body) for r in rows]

    async def _send(self, delivery: _Claimed) -> None:
        body = delivery.body.encode()
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
        self._results.append(_Result(delivery, at, status_code, error, duration_ms))
        self.wake()

    def _next_attempt(self, result: _Result) -> tuple[str, datetime]:
        if result.ok:
            return "delivered", result.at
        backoff = min(self.retry_base_s * 2 ** (result.delivery.attempts - 1), MAX_BACKOFF_S)
        retry_at = datetime.now(UTC) + timedelta(seconds=backoff)
        if retry_at > result.delivery.expires_at:
            return "failed", result.at
        return "pending", retry_at

    async def _flush_results(self) -> None:
        if not self._results:
            return
        results, self._results = self._results, []
        updates: list[dict[str, Any]] = []
        for result in results:
            status, next_at = self._next_attempt(result)
            updates.append({"b_id": result.delivery.id, "b_status": status, "b_next": next_at})
            if not result.ok:
                log.info(
                    "sandbox_webhook_delivery_failed",
                    delivery_id=result.delivery.id,
                    attempt=result.delivery.attempts,
                    status_code=result.status_code,
                    error=result.error,
                    next_status=status,
                )
        d = webhook_deliveries
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(d)
                    .where(d.c.id == bindparam("b_id"))
                    .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next")),
                    updates,
                )
                await conn.execute(
                    insert(webhook_attempts),
                    [
                        {
                            "delivery_id": r.delivery.id,
                            "at": r.at,
                            "status_code": r.status_code,
                            "error": r.error,
                            "duration_ms": r.duration_ms,
                        }
                        for r in results
                    ],
                )
        except BaseException:
            self._results = results + self._results  # keep them for the next flush
            raise
