"""``JobQueue``: enqueue (in the caller's transaction), claim, and record outcomes.

Enqueue runs on the caller's connection, inside its transaction: the job exists if and only if
what made it necessary committed (the outbox's guarantee, for work leaving the system). The
wake-up is a ``NOTIFY`` in that same transaction: PostgreSQL delivers it at commit and drops
it on rollback. A caller that will run the job itself right after its commit (the charger's
low-latency path) enqueues it already claimed instead: no NOTIFY, no claim round trip, and
should the process die first, the lease lapses and any worker claims it again.

A job remembers the span that enqueued it (``Job.traceparent``: the consumer handling the
event, the request) so its run, minutes or retries later, is in the same trace. The
traceparent is kept in the payload under ``TRACEPARENT_KEY`` and taken out again on claim
(handlers never see it): a column would need a revision in every service database with
queues for a 55-character string.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.db import driver
from waybill.common.observability.tracing import current_traceparent
from waybill.common.queue import statements as q
from waybill.common.queue.schema import QUEUE_CHANNEL
from waybill.common.queue.spec import Job, QueueSpec

NO_AGING_S = 1e12
TRACEPARENT_KEY = "_traceparent"
T = TypeVar("T")


async def _uncancellable(work: Awaitable[T]) -> T:
    """Run ``work`` (one transaction of our own) to its end even if the caller is cancelled.

    Cancelling a task while SQLAlchemy's asyncpg adapter awaits ``BEGIN`` leaves the pooled
    connection inside a server-side transaction that the adapter does not know about; the
    next transaction on it then never commits. Stopping a worker cancels its tasks, so each
    statement of ours finishes (and commits or rolls back) first; a claim finished this way is
    not run -- its lease lapses and the job is claimed again.
    """
    return await asyncio.shield(asyncio.ensure_future(work))


@dataclass(frozen=True)
class NewJob:
    """A job to enqueue with ``JobQueue.enqueue_many``."""

    key: str
    payload: dict[str, Any]
    tenant_id: str | None = None
    priority: int = 0
    run_at: datetime | None = None
    deadline: datetime | None = None
    traceparent: str | None = None  # None: the span current at ``enqueue_many``


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int
    running: int
    failed: int
    oldest_waiting_s: float


@dataclass(frozen=True)
class JobSummary:
    id: int
    queue: str
    key: str
    status: str
    attempts: int
    priority: int
    run_at: datetime
    enqueued_at: datetime
    finished_at: datetime | None
    last_error: str | None


def _stored(payload: dict[str, Any], traceparent: str | None) -> str:
    """The payload as stored: with the traceparent of the job's trace, if it has one."""
    if traceparent is not None:
        payload = {**payload, TRACEPARENT_KEY: traceparent}
    return json.dumps(payload, separators=(",", ":"))


def _job(queue: str, row: asyncpg.Record) -> Job:
    raw = row["payload"]
    payload = json.loads(raw) if isinstance(raw, str) else dict(raw)
    traceparent = payload.pop(TRACEPARENT_KEY, None)
    return Job(
        id=row["id"],
        queue=queue,
        key=row["key"],
        tenant_id=row["tenant_id"],
        payload=payload,
        attempts=row["attempts"],
        priority=row["priority"],
        enqueued_at=row["enqueued_at"],
        deadline=row["deadline"],
        traceparent=traceparent if isinstance(traceparent, str) else None,
    )


class JobQueue:
    """One queue of a service database (``spec.name``), on the service's engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        spec: QueueSpec,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.clock = clock
        self._lease = timedelta(seconds=spec.lease_s)
        self._aging_s = spec.aging_s or NO_AGING_S

    @property
    def name(self) -> str:
        return self.spec.name

    # --- enqueue (caller's transaction) ----------------------------------------------------

    async def enqueue(
        self,
        conn: AsyncConnection,
        *,
        key: str,
        payload: dict[str, Any],
        tenant_id: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        deadline: datetime | None = None,
        claim: bool = False,
    ) -> Job:
        """Add a job in ``conn``'s transaction. ``claim``: the job is ours, leased now, to be
        run by this process once the transaction commits (``QueueWorker.submit``); otherwise
        a NOTIFY wakes the workers at commit. The job is in the current span's trace."""
        now = self.clock()
        traceparent = current_traceparent()
        raw = await driver(conn)
        job_id = await raw.fetchval(
            q.ENQUEUE_KEYED if self.spec.keyed else q.ENQUEUE,
            self.name,
            tenant_id,
            key,
            _stored(payload, traceparent),
            priority,
            "running" if claim else "queued",
            1 if claim else 0,
            now + self._lease if claim else (run_at or now),
            deadline,
            now,
        )
        if not claim:
            await raw.execute(q.NOTIFY, QUEUE_CHANNEL, self.name)
        return Job(
            id=job_id,
            queue=self.name,
            key=key,
            tenant_id=tenant_id,
            payload=payload,
            attempts=1 if claim else 0,
            priority=priority,
            enqueued_at=now,
            deadline=deadline,
            traceparent=traceparent,
        )

    async def enqueue_many(self, conn: AsyncConnection, jobs: Sequence[NewJob]) -> None:
        """Add ``jobs`` in ``conn``'s transaction with one statement and one NOTIFY."""
        if not jobs:
            return
        now = self.clock()
        current = current_traceparent()
        raw = await driver(conn)
        await raw.execute(
            q.ENQUEUE_MANY_KEYED if self.spec.keyed else q.ENQUEUE_MANY,
            self.name,
            [j.tenant_id for j in jobs],
            [j.key for j in jobs],
            [_stored(j.payload, j.traceparent or current) for j in jobs],
            [j.priority for j in jobs],
            [j.run_at or now for j in jobs],
            now,
            [j.deadline for j in jobs],
        )
        await raw.execute(q.NOTIFY, QUEUE_CHANNEL, self.name)

    # --- claims and outcomes (own transactions) --------------------------------------------

    async def claim(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due jobs (attempts + 1 each)."""
        if limit <= 0:
            return []
        return await _uncancellable(self._claim(limit))

    async def _claim(self, limit: int) -> list[Job]:
        now = self.clock()
        until = now + self._lease
        async with self.engine.begin() as conn:
            raw = await driver(conn)
            if not self.spec.keyed:
                rows = await raw.fetch(q.CLAIM, self.name, now, self._aging_s, until, limit)
                return [_job(self.name, r) for r in rows]
            ordered = self.spec.ordered
            locked = await raw.fetch(
                q.CLAIM_KEYS_ORDERED if ordered else q.CLAIM_KEYS,
                self.name,
                now,
                self._aging_s,
                limit,
            )
            keys = [r["key"] for r in locked]
            if not keys:
                return []
            if ordered:
                rows = await raw.fetch(q.CLAIM_OF_KEYS_ORDERED, self.name, now, until, keys)
            else:
                rows = await raw.fetch(q.CLAIM_OF_KEYS, self.name, now, self._aging_s, until, keys)
            served = [r["key"] for r in rows]
            if served:
                await raw.execute(
                    q.SERVE_KEYS,
                    self.name,
                    now,
                    self.spec.rate_per_key_s or 0.0,
                    until if self.spec.serial else None,
                    served,
                )
        return [_job(self.name, r) for r in rows]

    async def complete(self, job: Job) -> bool:
        """The job is done; False if its claim was lost (lease lapsed, claimed again)."""
        return await self._finish(q.COMPLETE, job, self.clock())

    async def complete_in(self, conn: AsyncConnection, job: Job) -> bool:
        """Mark ``job`` done inside ``conn``'s transaction (with the effect it recorded)."""
        key = await (await driver(conn)).fetchval(q.COMPLETE, job.id, job.attempts, self.clock())
        if key is not None and self.spec.serial:
            await (await driver(conn)).execute(q.FREE_KEY, self.name, key)
        return key is not None

    async def fail_in(self, conn: AsyncConnection, job: Job, error: str) -> bool:
        """Mark ``job`` failed inside ``conn``'s transaction (with the failure it recorded)."""
        raw = await driver(conn)
        key = await raw.fetchval(q.FAIL, job.id, job.attempts, self.clock(), error)
        if key is not None and self.spec.serial:
            await raw.execute(q.FREE_KEY, self.name, key)
        return key is not None

    async def reschedule_in(
        self, conn: AsyncConnection, job: Job, delay_s: float, error: str | None
    ) -> bool:
        """Back to ``queued``, due in ``delay_s``, inside ``conn``'s transaction (with the
        failed attempt it recorded); the workers hear of it at commit."""
        raw = await driver(conn)
        run_at = self.clock() + timedelta(seconds=delay_s)
        key = await raw.fetchval(q.RESCHEDULE, job.id, job.attempts, run_at, error)
        if key is None:
            return False
        if self.spec.serial:
            await raw.execute(q.FREE_KEY, self.name, key)
        await raw.execute(q.NOTIFY, QUEUE_CHANNEL, self.name)
        return True

    async def reschedule(self, job: Job, delay_s: float, error: str | None) -> bool:
        """Back to ``queued``, due in ``delay_s``; False if the claim was lost."""
        return await self._finish(
            q.RESCHEDULE, job, self.clock() + timedelta(seconds=delay_s), error
        )

    async def fail(self, job: Job, error: str) -> bool:
        """Never again: ``failed`` (counted, shown in the admin view)."""
        return await self._finish(q.FAIL, job, self.clock(), error)

    async def _finish(self, statement: str, job: Job, *args: Any) -> bool:
        return await _uncancellable(self._finish_now(statement, job, *args))

    async def _finish_now(self, statement: str, job: Job, *args: Any) -> bool:
        async with self.engine.begin() as conn:
            raw = await driver(conn)
            key = await raw.fetchval(statement, job.id, job.attempts, *args)
            if key is not None and self.spec.serial:
                await raw.execute(q.FREE_KEY, self.name, key)
        return key is not None

    # --- reads and housekeeping ------------------------------------------------------------

    async def next_due(self) -> datetime | None:
        """When the earliest queued job (or lease) comes due; None when the queue is empty."""
        return await _uncancellable(self._next_due())

    async def _next_due(self) -> datetime | None:
        async with self.engine.begin() as conn:
            due: datetime | None = await (await driver(conn)).fetchval(q.NEXT_DUE, self.name)
            return due

    async def prune(self) -> int:
        """Forget done jobs older than the retention; returns how many."""
        return await _uncancellable(self._prune())

    async def _prune(self) -> int:
        before = self.clock() - timedelta(seconds=self.spec.retention_s)
        async with self.engine.begin() as conn:
            status = await (await driver(conn)).execute(q.PRUNE, self.name, before)
        if self.spec.keyed:
            await self._prune_keys(before)
        return int(status.split()[-1])

    async def _prune_keys(self, before: datetime) -> int:
        """Forget keys idle since ``before`` (one row per key ever used otherwise: one per
        order for the notifier's deliveries)."""
        async with self.engine.begin() as conn:
            raw = await driver(conn)
            idle = [r["key"] for r in await raw.fetch(q.LOCK_IDLE_KEYS, self.name, before)]
            if not idle:
                return 0
            status = await raw.execute(q.DELETE_IDLE_KEYS, self.name, idle)
        return int(status.split()[-1])


async def queue_stats(engine: AsyncEngine, names: Sequence[str]) -> list[QueueStats]:
    """Depth, running, failed and oldest waiting age of each queue in ``names``."""
    return await _uncancellable(_queue_stats(engine, names))


async def _queue_stats(engine: AsyncEngine, names: Sequence[str]) -> list[QueueStats]:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        rows = await (await driver(conn)).fetch(q.STATS, list(names), now)
    found = {r["queue"]: r for r in rows}
    empty = {"depth": 0, "running": 0, "failed": 0, "oldest_waiting_s": None}
    return [
        QueueStats(
            queue=name,
            depth=found.get(name, empty)["depth"],
            running=found.get(name, empty)["running"],
            failed=found.get(name, empty)["failed"],
            oldest_waiting_s=float(found.get(name, empty)["oldest_waiting_s"] or 0.0),
        )
        for name in names
    ]


async def recent_jobs(
    engine: AsyncEngine, tenant_id: str | None, names: Sequence[str], limit: int = 20
) -> list[JobSummary]:
    """The tenant's last ``limit`` jobs of these queues, newest first (``tenant_id`` None:
    anyone's, for a process without tenants)."""
    async with engine.begin() as conn:
        raw = await driver(conn)
        if tenant_id is None:
            rows = await raw.fetch(q.RECENT_ANY_TENANT, list(names), limit)
        else:
            rows = await raw.fetch(q.RECENT, tenant_id, list(names), limit)
    return [JobSummary(**dict(r)) for r in rows]
