"""``QueueWorker``: runs one queue's jobs in this process, sleeping while there is nothing due.

The loop claims as many jobs as it has free slots, starts them, and sleeps until whichever
comes first: a NOTIFY for its queue (a commit enqueued a job), a local job finishing when the
loop waits for a slot or a key, a local retry scheduled, the next job's ``run_at`` (a delayed
job, a lease to recover) or ``poll_s`` (the fallback should a notification be missed). An idle
process therefore wakes every ``poll_s`` seconds, not every few milliseconds.

A handler returns (done), raises ``RetryLater`` (the queue's backoff, never past the job's
deadline or ``max_attempts``), raises ``GiveUp`` (failed), or lets a database/network error
escape: then the claim stays and the job is recovered when its lease lapses, as after a crash.

Each attempt runs in a ``<queue> run`` span, a child of the span that enqueued the job
(``Job.traceparent``), so a charge, an email or a webhook delivery stays in the trace of the
event that asked for it, however late it runs; what the handler appends is in it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from sqlalchemy.exc import DBAPIError, OperationalError

from waybill.common.failures.classify import database_unreachable
from waybill.common.observability.tracing import messaging_span
from waybill.common.queue.metrics import (
    QUEUE_DEPTH,
    QUEUE_FAILED,
    QUEUE_JOBS_FINISHED,
    QUEUE_OLDEST_WAITING,
    QUEUE_RUNNING,
)
from waybill.common.queue.spec import GiveUp, Job, Outcome, RetryLater
from waybill.common.queue.store import JobQueue, queue_stats
from waybill.common.queue.wakeup import Wakeup

log = structlog.get_logger(__name__)

Handler = Callable[[Job], Awaitable[Outcome | None]]
UNAVAILABLE = (OperationalError, DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
PRUNE_INTERVAL_S = 60.0


class QueueWorker:
    def __init__(
        self,
        queue: JobQueue,
        handler: Handler,
        *,
        dsn: str,
        service: str,
        concurrency: int = 16,
        poll_s: float = 5.0,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.service = service
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.wakeup = Wakeup(dsn, queue.name)
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._running_ids: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._full = False  # the loop found no free slot: a finishing job must wake it
        self._stats_at = 0.0
        self._pruned_at = 0.0
        self._log = log.bind(service=service, queue=queue.name)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"queue-{self.queue.name}")

    async def stop(self) -> None:
        """Stop claiming and cancel the jobs in flight (their leases lapse: at-least-once)."""
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        await self.wakeup.close()

    def submit(self, job: Job) -> None:
        """Run ``job``, enqueued claimed by this process, once its transaction committed."""
        if job.id in self._running_ids:
            return
        self._start(job)

    async def run(self) -> None:
        while True:
            await self.wakeup.ensure_listening()
            self.wakeup.event.clear()  # before claiming: a NOTIFY from now on is not lost
            try:
                free = self.concurrency - len(self._in_flight)
                self._full = free <= 0
                looked_at = datetime.now(UTC)
                claimed = await self.queue.claim(free)
                for job in claimed:
                    self._start(job)
                if claimed and len(claimed) == free:
                    continue  # maybe more due right now
                await self._housekeeping()
                timeout = self.idle_s(await self.queue.next_due(), looked_at)
            except Exception as exc:
                # The loop must outlive any failure (a connection broken by a database restart
                # raises asyncpg's InternalClientError, none of UNAVAILABLE): it polls again.
                if isinstance(exc, UNAVAILABLE) or database_unreachable(exc):
                    self._log.warning("queue_poll_failed", error=repr(exc))
                else:
                    self._log.exception("queue_poll_failed")
                timeout = self.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.event.wait(), timeout)

    # --- running one job -------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        self._running_ids.add(job.id)
        task = asyncio.create_task(self._run(job), name=f"job-{self.queue.name}-{job.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _run(self, job: Job) -> None:
        spec = self.queue.spec
        try:
            async with self._slots:
                with (
                    structlog.contextvars.bound_contextvars(job_id=job.id, queue=job.queue),
                    messaging_span(f"{job.queue} run", job.traceparent, self._attributes(job)),
                ):
                    if spec.max_attempts is not None and job.attempts > spec.max_attempts:
                        await self._fail(job, "attempts exhausted (lease lapsed)")
                        return
                    await self._attempt(job)
        except Exception as exc:
            # The claim stays; whoever claims the job once its lease lapses tries again.
            if isinstance(exc, UNAVAILABLE) or database_unreachable(exc):
                self._log.warning("queue_job_outcome_unrecorded", job_id=job.id, error=repr(exc))
            else:
                self._log.exception("queue_job_outcome_unrecorded", job_id=job.id)
        finally:
            self._running_ids.discard(job.id)
            # Wake the loop only when this frees what it waits for: a slot it lacked, or a key
            # (keyed queues). Waking it after every job would cost a claim per job.
            if self._full or spec.keyed:
                self.wakeup.wake()

    async def _attempt(self, job: Job) -> None:
        spec = self.queue.spec
        try:
            outcome = await self.handler(job)
        except RetryLater as retry:
            delay = retry.delay_s
            if delay is None:
                delay = spec.backoff.delay(job.attempts, retry.retry_after_s)
            await self._retry(job, delay, retry.reason)
            return
        except GiveUp as exc:
            await self._fail(job, str(exc))
            return
        except UNAVAILABLE:
            raise
        except Exception as exc:
            # A bug or an unexpected answer: retried with backoff, never in a hot loop.
            self._log.exception("queue_job_crashed", job_id=job.id)
            await self._retry(job, spec.backoff.delay(job.attempts, None), repr(exc)[:500])
            return
        if outcome is Outcome.completed_in_transaction:
            self._count("done")
            return
        self._count("done" if await self.queue.complete(job) else "lost")

    async def _retry(self, job: Job, delay_s: float, reason: str) -> None:
        spec = self.queue.spec
        retry_at = datetime.now(UTC) + timedelta(seconds=delay_s)
        if job.deadline is not None and retry_at > job.deadline:
            await self._fail(job, f"deadline passed: {reason}")
            return
        if spec.max_attempts is not None and job.attempts >= spec.max_attempts:
            await self._fail(job, f"attempts exhausted: {reason}")
            return
        self._log.info(
            "queue_job_retry_scheduled",
            job_id=job.id,
            attempt=job.attempts,
            retry_in_s=round(delay_s, 3),
            reason=reason,
        )
        self._count("retry" if await self.queue.reschedule(job, delay_s, reason) else "lost")
        self.wakeup.wake()  # the loop's sleep may end after this retry is due

    async def _fail(self, job: Job, reason: str) -> None:
        self._log.warning("queue_job_failed", job_id=job.id, attempt=job.attempts, reason=reason)
        self._count("failed" if await self.queue.fail(job, reason) else "lost")

    def _count(self, outcome: str) -> None:
        QUEUE_JOBS_FINISHED.labels(self.service, self.queue.name, outcome).inc()
        trace.get_current_span().set_attribute("waybill.job.outcome", outcome)

    def _attributes(self, job: Job) -> dict[str, AttributeValue]:
        return {
            "messaging.system": "waybill.queue",
            "messaging.operation.type": "process",
            "messaging.operation.name": "run",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.id),
            "waybill.job.attempt": job.attempts,
        }

    # --- sleeping and housekeeping ---------------------------------------------------------

    def idle_s(self, due: datetime | None, looked_at: datetime) -> float:
        """How long to sleep when nothing more can be claimed now: ``due`` is the queue's
        earliest ``run_at``, ``looked_at`` when the last claim began."""
        if due is None:
            return self.poll_s
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            return min(wait, self.poll_s)
        if due > looked_at:
            # It came due after the claim looked (a timer ends a hair early, a retry due in
            # ms): look again now. Sleeping the poll interval here made a 1 s retry 5 s late.
            return 0.0
        # Due but not claimable: every slot busy (a finishing job wakes us), a serial key busy,
        # a key's rate limit, or another worker's claim in progress.
        return min(self.queue.spec.rate_per_key_s or self.poll_s, self.poll_s)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._stats_at >= self.poll_s:
            self._stats_at = now
            await self.refresh_metrics()
        if now - self._pruned_at >= PRUNE_INTERVAL_S:
            self._pruned_at = now
            await self.queue.prune()

    async def refresh_metrics(self) -> None:
        (stats,) = await queue_stats(self.queue.engine, [self.queue.name])
        labels = (self.service, self.queue.name)
        QUEUE_DEPTH.labels(*labels).set(stats.depth)
        QUEUE_RUNNING.labels(*labels).set(stats.running)
        QUEUE_FAILED.labels(*labels).set(stats.failed)
        QUEUE_OLDEST_WAITING.labels(*labels).set(stats.oldest_waiting_s)
