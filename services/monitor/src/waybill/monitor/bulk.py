"""Bulk retry and abandon of dead letters: a durable job on the kit's work queue.

``POST /api/dlq/bulk`` takes the selection (the tenant's *pending* dead letters among ``ids``
and matching ``filter``) when the job is created, in the transaction that writes the job row,
its items and the queue job: the job exists if and only if its selection does. One queue job
(priority: ``critical`` > ``high`` > ``normal``, so a critical bulk job is claimed first) works
through the items in order, each in its own transaction that locks the job row first: the item
is done (the dead letter retried or abandoned, with its audit entry naming the job), its
outcome written and the job's counts moved, or none of it. So a job run twice (a lease that
lapsed) never does an item twice, and ``cancel`` (which takes the same lock) stops a running
job at the next item.

An item that cannot be done (the dead letter is no longer pending, the broker did not take the
retry, a webhook message -- whose replay needs the admin's own key, never stored) counts as
``failed`` with its reason; the job ``succeeded`` once it went through its selection, unless
every item failed (``failed``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Row, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.queue import Job, JobQueue, QueueSpec, RetryLater
from waybill.monitor import repository
from waybill.monitor.dead_letters import DeadLetters
from waybill.monitor.domain.errors import JobFinished, JobNotFound, MonitorError
from waybill.monitor.tables import dead_letters, dlq_job_items, dlq_jobs

log = structlog.get_logger(__name__)

BULK_QUEUE = "dlq-bulk"
PRIORITY = {"normal": 0, "high": 1, "critical": 2}
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


def bulk_queue(engine: AsyncEngine, *, lease_s: float = 60.0) -> JobQueue:
    return JobQueue(engine, QueueSpec(name=BULK_QUEUE, lease_s=lease_s))


def selection(tenant_id: str, ids: Sequence[str] | None, filters: dict[str, Any]) -> Any:
    """The tenant's pending dead letters among ``ids`` (if given) matching ``filters``."""
    query = repository.dead_letters_query(tenant_id, filters).where(
        dead_letters.c.status == "pending"
    )
    if ids is not None:
        query = query.where(dead_letters.c.id.in_(list(ids)))
    return query


class BulkJobs:
    def __init__(
        self, engine: AsyncEngine, letters: DeadLetters, queue: JobQueue, *, slice_s: float = 20.0
    ) -> None:
        self._engine = engine
        self._letters = letters
        self._queue = queue
        # A run works this long, then hands the job back to the queue (due now): it never
        # outlives its lease, and a critical job waiting behind it is claimed first.
        self._slice_s = slice_s

    async def count(
        self, tenant_id: str, ids: Sequence[str] | None, filters: dict[str, Any]
    ) -> int:
        chosen = selection(tenant_id, ids, filters).subquery()
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(chosen)) or 0)

    async def create(
        self,
        tenant_id: str,
        actor: str,
        *,
        action: str,
        priority: str,
        ids: Sequence[str] | None,
        filters: dict[str, Any],
    ) -> tuple[str, int]:
        """A new job over the selection; returns its id and how many dead letters it has."""
        job_id = f"job_{uuid.uuid4().hex}"
        chosen = selection(tenant_id, ids, filters).subquery()
        ordered = select(
            literal(job_id),
            func.row_number().over(order_by=(chosen.c.created_at, chosen.c.id)),
            chosen.c.id,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(dlq_jobs).values(
                    id=job_id,
                    tenant_id=tenant_id,
                    action=action,
                    priority=priority,
                    status="queued",
                    actor=actor,
                    selection={"ids": list(ids) if ids is not None else None, "filter": filters},
                    total=0,
                )
            )
            added = await conn.execute(
                insert(dlq_job_items).from_select(["job_id", "position", "dead_letter_id"], ordered)
            )
            total = added.rowcount
            await conn.execute(update(dlq_jobs).where(dlq_jobs.c.id == job_id).values(total=total))
            await self._queue.enqueue(
                conn,
                key=job_id,
                payload={"job_id": job_id},
                tenant_id=tenant_id,
                priority=PRIORITY[priority],
            )
        log.info(
            "monitor_bulk_job_created",
            job_id=job_id,
            tenant_id=tenant_id,
            action=action,
            priority=priority,
            total=total,
        )
        return job_id, total

    async def get(self, tenant_id: str, job_id: str) -> Row[Any]:
        async with self._engine.connect() as conn:
            return await self._find(conn, tenant_id, job_id, lock=False)

    async def cancel(self, tenant_id: str, job_id: str) -> Row[Any]:
        """Cancel a queued or running job (a running one stops before its next item); a
        cancelled one stays cancelled; a finished one is 409."""
        async with self._engine.begin() as conn:
            job = await self._find(conn, tenant_id, job_id, lock=True)
            if job.status in ("succeeded", "failed"):
                raise JobFinished(
                    f"job {job_id} already {job.status}", extra={"status": job.status}
                )
            if job.status != "cancelled":
                await _set(conn, job_id, status="cancelled", finished_at=func.now())
                log.info("monitor_bulk_job_cancelled", job_id=job_id, processed=job.processed)
        return await self.get(tenant_id, job_id)

    # --- the queue's handler -----------------------------------------------------------------

    async def work(self, job: Job) -> None:
        job_id = str(job.payload["job_id"])
        until = time.monotonic() + self._slice_s
        while not await self._next_item(job_id):
            if time.monotonic() >= until:
                raise RetryLater(f"bulk job {job_id} continues", delay_s=0)

    async def _next_item(self, job_id: str) -> bool:
        """Do the job's next item; True when the job has none left (or was cancelled)."""
        async with self._engine.begin() as conn:
            job = (
                await conn.execute(
                    select(dlq_jobs).where(dlq_jobs.c.id == job_id).with_for_update()
                )
            ).first()
            if job is None or job.status in FINISHED:
                return True
            item = (
                await conn.execute(
                    select(dlq_job_items)
                    .where(dlq_job_items.c.job_id == job_id, dlq_job_items.c.outcome.is_(None))
                    .order_by(dlq_job_items.c.position)
                    .limit(1)
                )
            ).first()
            if item is None:
                status = "failed" if job.failed and not job.succeeded else "succeeded"
                await _set(conn, job_id, status=status, finished_at=func.now())
                log.info(
                    "monitor_bulk_job_finished",
                    job_id=job_id,
                    status=status,
                    succeeded=job.succeeded,
                    failed=job.failed,
                )
                return True
            error = await self._do(conn, job, item.dead_letter_id)
            await conn.execute(
                update(dlq_job_items)
                .where(dlq_job_items.c.job_id == job_id, dlq_job_items.c.position == item.position)
                .values(outcome="failed" if error else "succeeded", error=error, done_at=func.now())
            )
            await _set(
                conn,
                job_id,
                status="running",
                processed=dlq_jobs.c.processed + 1,
                succeeded=dlq_jobs.c.succeeded + (0 if error else 1),
                failed=dlq_jobs.c.failed + (1 if error else 0),
            )
        return False

    async def _do(self, conn: AsyncConnection, job: Any, dead_letter_id: str) -> str | None:
        """Retry or abandon one dead letter (in a savepoint); the reason it failed, if it did."""
        detail = {"job_id": job.id}
        try:
            async with conn.begin_nested():
                if job.action == "abandon":
                    await self._letters.abandon_in(
                        conn, job.tenant_id, dead_letter_id, job.actor, detail
                    )
                else:
                    await self._letters.retry_in(
                        conn,
                        job.tenant_id,
                        dead_letter_id,
                        job.actor,
                        priority=job.priority,
                        detail=detail,
                    )
        except MonitorError as exc:
            return f"{exc.code}: {exc}"[:500]
        return None

    async def _find(
        self, conn: AsyncConnection, tenant_id: str, job_id: str, *, lock: bool
    ) -> Row[Any]:
        query = select(dlq_jobs).where(dlq_jobs.c.id == job_id, dlq_jobs.c.tenant_id == tenant_id)
        job = (await conn.execute(query.with_for_update() if lock else query)).first()
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        return job


async def _set(conn: AsyncConnection, job_id: str, **changes: Any) -> None:
    await conn.execute(
        update(dlq_jobs).where(dlq_jobs.c.id == job_id).values(**changes, updated_at=func.now())
    )
