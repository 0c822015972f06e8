"""The outbox relay: publishes committed outbox rows to Kafka, one active relay per database.

Strategy (see docs/adr on the outbox): **delete after publish**. The relay reads the oldest
rows still in the table, sends them, waits for every broker ack, then deletes exactly those
rows. Nothing is remembered between batches — no high-water mark — so a row whose transaction
took a lower id but committed after a higher one is simply found by a later read, and can never
be skipped. (A high-water mark on the id would skip it: the id is allocated at insert, not at
commit.) A crash between the acks and the delete re-publishes the batch; consumers dedupe by
event id, so that costs a duplicate, never a loss.

Order: an append to a stream only succeeds once the previous version has committed, so within a
stream outbox ids grow with the version. Batches go out in id order and one batch is fully
acked before the next is read; inside a batch every record is handed to the idempotent
producer in id order (same key -> same partition -> kept in order) before any ack is awaited.

Waking up: LISTEN/NOTIFY with a polling fallback. Appends notify only while the relay sleeps
(PostgreSQL serialises the commits of notifying transactions, which would cap write
throughput). The relay sleeps holding the advisory lock ``OUTBOX_IDLE_LOCK_KEY``; an append
tries to take it shared: if it cannot, the relay is asleep and the append notifies; if it can,
the append keeps it until its commit is visible, so the relay cannot take it -- and fall asleep
-- before that row can be read. Having taken it, the relay looks once more, then sleeps. No
wake-up is lost; under load the relay polls briefly (BUSY_POLL_S) instead of sleeping.

Leadership: a session-level ``pg_advisory_lock`` on the relay's own connection. A second
replica blocks on that lock; when the leader's session ends (stop, crash, SIGKILL) PostgreSQL
releases the lock and the standby proceeds at once. Fetch and delete run on the leader's
connection, so a relay whose session died cannot act as leader any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from waybill.common.backoff import Backoff, Jitter
from waybill.common.eventstore.schema import OUTBOX_CHANNEL, OUTBOX_IDLE_LOCK_KEY
from waybill.common.failures.classify import database_unreachable
from waybill.common.outbox.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED

log = structlog.get_logger(__name__)

# Advisory-lock keys are scoped to the database, so one constant gives one leader per database.
DEFAULT_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"waybill.outbox.relay").digest()[:8], "big", signed=True
)
BACKLOG_REPORT_INTERVAL_S = 1.0
BUSY_POLL_S = 0.01


# The first wait is at most 0.4 s, the longest 5 s: a relay comes back soon after the database
# or the broker does, without hammering either while they are down.
RELAY_BACKOFF = Backoff(base_s=0.4, max_s=5.0, jitter=Jitter.FULL)


class _Backoff:
    """A streak of failures spaced by the kit's backoff policy; reset after a success."""

    def __init__(self, policy: Backoff = RELAY_BACKOFF) -> None:
        self.policy = policy
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        return self.policy.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0


class OutboxRelay:
    """Publishes the outbox of the database at ``dsn`` (a plain asyncpg DSN) to Kafka."""

    def __init__(
        self,
        dsn: str,
        bootstrap_servers: str,
        *,
        service: str,
        lock_key: int | None = None,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        table: str = "outbox",
    ) -> None:
        self.dsn = dsn
        self.bootstrap_servers = bootstrap_servers
        self.service = service
        self.lock_key = DEFAULT_LOCK_KEY if lock_key is None else lock_key
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.is_leader = False
        self.published_total = 0
        self._select = (
            f'SELECT id, topic, key, value, headers::text FROM "{table}" ORDER BY id LIMIT $1'
        )
        self._delete = f'DELETE FROM "{table}" WHERE id = ANY($1::bigint[])'
        self._count = f'SELECT count(*) FROM "{table}"'
        self._exists = f'SELECT EXISTS (SELECT 1 FROM "{table}")'
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._backlog_reported_at = 0.0
        self._log = log.bind(service=service)

    async def run(self) -> None:
        """Lead or stand by, and publish while leading, until ``stop()`` or cancellation."""
        self._task = asyncio.current_task()
        backoff = _Backoff()
        try:
            while not self._stopping:
                try:
                    await self._serve()
                except Exception as exc:
                    # Lead again after any failure (e.g. asyncpg's InternalClientError on a
                    # connection broken by a database restart); unexpected ones with a stack.
                    delay = backoff.next_delay()
                    expected = isinstance(
                        exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError
                    ) or database_unreachable(exc)
                    (self._log.warning if expected else self._log.exception)(
                        "outbox_relay_connection_failed",
                        error=repr(exc),
                        retry_in_s=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self.is_leader = False

    async def stop(self) -> None:
        """Stop publishing and release leadership (rows in flight are re-published later)."""
        self._stopping = True
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _serve(self) -> None:
        # The application name lets operators (and tests) see which process leads.
        name = f"waybill-outbox-relay:{self.service}:{os.getpid()}"
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": name})
        try:
            self._log.info("outbox_relay_standby_waiting")
            await conn.execute("SELECT pg_advisory_lock($1)", self.lock_key)
            self.is_leader = True
            self._log.info("outbox_relay_leadership_acquired")
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            await self._lead(conn)
        finally:
            self.is_leader = False
            await conn.close(timeout=5)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        producer_backoff = _Backoff()
        while True:
            producer = await self._start_producer(producer_backoff)
            try:
                await self._publish_until_failure(conn, producer)
            except KafkaError as exc:
                # A fresh producer after a failure: new producer id, clean sequence numbers.
                delay = producer_backoff.next_delay()
                self._log.warning(
                    "outbox_publish_failed", error=repr(exc), retry_in_s=round(delay, 2)
                )
                await asyncio.sleep(delay)
            finally:
                await producer.stop()

    async def _start_producer(self, backoff: _Backoff) -> AIOKafkaProducer:
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=f"waybill-outbox-{self.service}",
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                max_batch_size=256 * 1024,
                request_timeout_ms=15_000,
            )
            try:
                await producer.start()
                return producer
            except KafkaError as exc:
                await producer.stop()
                delay = backoff.next_delay()
                self._log.warning(
                    "outbox_producer_start_failed", error=repr(exc), retry_in_s=round(delay, 2)
                )
                await asyncio.sleep(delay)

    async def _publish_until_failure(
        self, conn: asyncpg.Connection, producer: AIOKafkaProducer
    ) -> None:
        while True:
            # Cleared before the read: a NOTIFY that lands during it makes the wait return at once.
            self._wake.clear()
            rows = await conn.fetch(self._select, self.batch_size)
            if not rows:
                OUTBOX_BACKLOG.labels(service=self.service).set(0)
                await self._sleep(conn)
                continue
            await self._send(producer, rows)
            await conn.execute(self._delete, [row["id"] for row in rows])
            self.published_total += len(rows)
            OUTBOX_PUBLISHED.labels(service=self.service).inc(len(rows))
            # Per batch, i.e. up to once per event at low rates: DEBUG, the metric counts them.
            self._log.debug(
                "outbox_batch_published",
                count=len(rows),
                first_id=rows[0]["id"],
                last_id=rows[-1]["id"],
            )
            await self._report_backlog(conn)

    async def _sleep(self, conn: asyncpg.Connection) -> None:
        """Wait for a notification, unless an append may not have notified (see module doc)."""
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", OUTBOX_IDLE_LOCK_KEY):
            # An append that saw us awake (so did not notify) has not finished yet: poll soon.
            await asyncio.sleep(BUSY_POLL_S)
            return
        try:
            # Appends from now on notify; rows committed since our last read are visible now.
            if await conn.fetchval(self._exists):
                return
            # Polling fallback: a notification lost with a connection costs one interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", OUTBOX_IDLE_LOCK_KEY)

    async def _send(self, producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> None:
        """Hand every record to the producer, then await all acks together (pipelined)."""
        pending = []
        for row in rows:
            headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
            pending.append(
                await producer.send(row["topic"], row["value"], key=row["key"], headers=headers)
            )
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _report_backlog(self, conn: asyncpg.Connection) -> None:
        # count(*) scans the table: at most once a second, only while there is work.
        now = time.monotonic()
        if now - self._backlog_reported_at < BACKLOG_REPORT_INTERVAL_S:
            return
        self._backlog_reported_at = now
        backlog = await conn.fetchval(self._count)
        OUTBOX_BACKLOG.labels(service=self.service).set(backlog)
