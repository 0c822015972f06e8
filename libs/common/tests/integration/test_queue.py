"""The work queue on real PostgreSQL: leases, SKIP LOCKED, aging, per-key serial, per-key rate
limit, fairness, and the after-commit wake-up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import create_engine
from waybill.common.queue import (
    QUEUE_CHANNEL,
    GiveUp,
    Job,
    JobQueue,
    QueueSpec,
    QueueWorker,
    RetryLater,
    define_queue_tables,
    queue_stats,
)
from waybill.devstack.testing import eventually


@dataclass
class Db:
    engine: AsyncEngine
    dsn: str

    def queue(self, **spec: object) -> JobQueue:
        name = str(spec.pop("name", f"q-{uuid.uuid4().hex[:8]}"))
        return JobQueue(self.engine, QueueSpec(name=name, **spec))  # type: ignore[arg-type]

    async def enqueue(self, queue: JobQueue, key: str = "k", **fields: object) -> Job:
        async with self.engine.begin() as conn:
            return await queue.enqueue(conn, key=key, payload={"key": key}, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def db(infra) -> AsyncIterator[Db]:
    name = await asyncio.to_thread(infra.new_database, "queue")
    settings = infra.settings()
    metadata = MetaData()
    define_queue_tables(metadata)
    engine = create_engine(settings.database_dsn(name), pool_size=8)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield Db(engine, settings.asyncpg_dsn(name))
    await engine.dispose()


async def test_a_crashed_workers_job_is_claimed_again_once_its_lease_lapses(db: Db):
    queue = db.queue(lease_s=0.3)
    await db.enqueue(queue)
    (first,) = await queue.claim(10)

    assert await queue.claim(10) == []  # leased: nobody else takes it
    (again,) = await eventually(lambda: queue.claim(10), what="the lapsed lease")

    assert (again.id, again.attempts) == (first.id, 2)
    assert await queue.complete(first) is False  # the crashed claim cannot finish it any more
    assert await queue.complete(again) is True


async def test_two_workers_never_run_one_job(db: Db):
    queue = db.queue()
    for i in range(120):
        await db.enqueue(queue, key=f"k{i}")
    runs: Counter[int] = Counter()

    async def handle(job: Job) -> None:
        runs[job.id] += 1
        await asyncio.sleep(0)

    workers = [
        QueueWorker(JobQueue(db.engine, queue.spec), handle, dsn=db.dsn, service="t", concurrency=8)
        for _ in range(2)
    ]
    racing = await asyncio.gather(*(queue.claim(7) for _ in range(6)))  # bare claims race too
    for worker in workers:
        worker.start()
    try:
        for job in (j for claimed in racing for j in claimed):
            await queue.complete(job)
            runs[job.id] += 1

        async def all_done() -> bool:
            (stats,) = await queue_stats(db.engine, [queue.name])
            return stats.depth == 0 and stats.running == 0 and sum(runs.values()) >= 120

        await eventually(all_done, what="every job done")
    finally:
        for worker in workers:
            await worker.stop()
    assert len(runs) == 120
    assert set(runs.values()) == {1}


async def test_a_job_waiting_too_long_moves_up_a_priority(db: Db):
    now = datetime.now(UTC)
    aging = db.queue(aging_s=0.5)
    plain = db.queue()
    for queue in (aging, plain):
        await db.enqueue(queue, key="old", priority=0, run_at=now - timedelta(seconds=2))
        await db.enqueue(queue, key="urgent", priority=2, run_at=now)

    (first_aged,) = await aging.claim(1)
    (first_plain,) = await plain.claim(1)

    assert first_aged.key == "old"  # waited 2 s at 0.5 s per step: priority 0 + 4 > 2
    assert first_plain.key == "urgent"


async def test_jobs_of_one_key_run_one_at_a_time_without_blocking_other_keys(db: Db):
    queue = db.queue(serial=True)
    for _ in range(3):
        await db.enqueue(queue, key="endpoint-1/order-1")
    await db.enqueue(queue, key="endpoint-1/order-2")

    racing = await asyncio.gather(*(queue.claim(10) for _ in range(5)))
    first = [j for claimed in racing for j in claimed]
    later = await queue.claim(10)

    assert sorted(j.key for j in first) == ["endpoint-1/order-1", "endpoint-1/order-2"]
    assert later == []  # both keys busy
    busy = next(j for j in first if j.key == "endpoint-1/order-1")
    await queue.complete(busy)
    (following,) = await queue.claim(10)
    assert following.key == "endpoint-1/order-1" and following.id != busy.id


async def test_an_ordered_keys_job_waiting_for_its_retry_holds_back_the_keys_later_jobs(db: Db):
    queue = db.queue(ordered=True)
    first = await db.enqueue(queue, key="endpoint-1/order-1")
    second = await db.enqueue(queue, key="endpoint-1/order-1")
    await db.enqueue(queue, key="endpoint-1/order-2")

    claimed = await queue.claim(10)
    assert {j.key for j in claimed} == {"endpoint-1/order-1", "endpoint-1/order-2"}
    assert {j.id for j in claimed if j.key == "endpoint-1/order-1"} == {first.id}
    failed = next(j for j in claimed if j.id == first.id)
    await queue.reschedule(failed, 0.3, "HTTP 500")

    # The key is free, its later job due: still not claimable while the first waits.
    assert await queue.claim(10) == []
    (retried,) = await eventually(lambda: queue.claim(10), timeout_s=10, what="the retry due")
    assert retried.id == first.id
    await queue.complete(retried)
    (following,) = await queue.claim(10)
    assert following.id == second.id
    assert queue.spec.serial  # ordered implies serial


async def test_a_serial_keys_lapsed_lease_frees_the_key(db: Db):
    queue = db.queue(serial=True, lease_s=0.3)
    await db.enqueue(queue, key="a")
    await db.enqueue(queue, key="a")
    (crashed,) = await queue.claim(10)

    (recovered,) = await eventually(lambda: queue.claim(10), what="the key freed by the lease")

    assert recovered.id == crashed.id  # the lapsed job first (oldest due), never two at once
    assert await queue.claim(10) == []


async def test_a_key_starts_at_most_one_job_per_rate_interval(db: Db):
    queue = db.queue(rate_per_key_s=0.5)
    for _ in range(3):
        await db.enqueue(queue, key="sms:+441234")
    await db.enqueue(queue, key="sms:+449999")
    started = time.monotonic()

    first = await queue.claim(10)
    assert sorted(j.key for j in first) == ["sms:+441234", "sms:+449999"]
    for job in first:
        await queue.complete(job)
    assert await queue.claim(10) == []  # done, yet the rate holds the key back
    (second,) = await eventually(lambda: queue.claim(10), what="the next start of the key")

    assert second.key == "sms:+441234"
    assert time.monotonic() - started >= 0.5


async def test_one_busy_key_cannot_starve_the_others(db: Db):
    queue = db.queue(fair=True)
    for _ in range(30):
        await db.enqueue(queue, key="busy")
    for n in range(5):
        await db.enqueue(queue, key=f"quiet-{n}")
    order: list[str] = []

    while len(order) < 35:
        claimed = await queue.claim(2)
        assert claimed, "jobs left but none claimed"
        for job in claimed:
            order.append(job.key)
            await queue.complete(job)

    quiet_done_at = max(i for i, key in enumerate(order) if key.startswith("quiet-"))
    assert order[: quiet_done_at + 1].count("busy") <= 3  # served round-robin, not FIFO


async def test_the_wakeup_arrives_after_commit_and_never_after_rollback(db: Db):
    rolled_back, committed = db.queue(), db.queue()
    heard: list[str] = []
    listener = await asyncpg.connect(db.dsn)
    await listener.add_listener(QUEUE_CHANNEL, lambda *args: heard.append(args[3]))
    try:
        async with db.engine.connect() as conn:
            transaction = await conn.begin()
            await rolled_back.enqueue(conn, key="k", payload={})
            await transaction.rollback()
        async with db.engine.connect() as conn:
            transaction = await conn.begin()
            await committed.enqueue(conn, key="k", payload={})
            await asyncio.sleep(0.1)  # a notification sent before commit would be here by now
            before_commit = list(heard)
            await transaction.commit()

        await eventually(lambda: asyncio.sleep(0, committed.name in heard), what="the wake-up")
    finally:
        await listener.close()
    assert before_commit == []
    assert rolled_back.name not in heard  # notifications arrive in commit order


async def test_a_sleeping_worker_runs_a_committed_job_at_once(db: Db):
    queue = db.queue()
    ran = asyncio.Event()

    async def handle(job: Job) -> None:
        ran.set()

    worker = QueueWorker(queue, handle, dsn=db.dsn, service="t", poll_s=60)
    worker.start()
    try:
        await eventually(lambda: asyncio.sleep(0.05, worker.wakeup._conn is not None))
        await asyncio.sleep(0.2)  # let it fall asleep (poll_s is a minute)
        started = time.monotonic()
        await db.enqueue(queue)
        await asyncio.wait_for(ran.wait(), 10)
    finally:
        await worker.stop()
    assert time.monotonic() - started < 5  # woken by the commit, not by the minute's poll


async def test_a_failing_job_is_retried_with_backoff_until_its_deadline_then_failed(db: Db):
    queue = db.queue()
    attempts: list[int] = []

    async def handle(job: Job) -> None:
        attempts.append(job.attempts)
        if job.payload["key"] == "hopeless":
            raise GiveUp("permanently refused")
        raise RetryLater("endpoint down", delay_s=0.05)

    await db.enqueue(queue, key="flaky", deadline=datetime.now(UTC) + timedelta(seconds=1))
    await db.enqueue(queue, key="hopeless")
    worker = QueueWorker(queue, handle, dsn=db.dsn, service="t", poll_s=0.5)
    worker.start()
    try:

        async def both_failed() -> bool:
            (stats,) = await queue_stats(db.engine, [queue.name])
            return stats.failed == 2

        await eventually(both_failed, what="both jobs failed")
    finally:
        await worker.stop()
    assert attempts.count(1) == 2  # each tried
    assert max(attempts) >= 3  # the flaky one again and again, until its deadline


async def test_a_job_enqueued_claimed_runs_in_process_right_after_commit(db: Db):
    queue = db.queue()
    ran: list[int] = []

    async def handle(job: Job) -> None:
        ran.append(job.id)

    worker = QueueWorker(queue, handle, dsn=db.dsn, service="t", poll_s=60)
    async with db.engine.begin() as conn:
        job = await queue.enqueue(conn, key="pay_1", payload={}, claim=True)
    assert await queue.claim(10) == []  # leased to us: no other worker takes it
    worker.submit(job)
    try:
        await eventually(lambda: asyncio.sleep(0, ran == [job.id]), what="the local run")
        (stats,) = await eventually(lambda: queue_stats(db.engine, [queue.name]), what="stats")
    finally:
        await worker.stop()
    assert (stats.depth, stats.running) == (0, 0)


class _BrokenOnce(JobQueue):
    """A queue whose first claim fails as a pooled connection broken by a database restart
    does (asyncpg's InternalClientError, none of the usual connection errors)."""

    broke = False

    async def claim(self, limit: int) -> list[Job]:
        if not self.broke:
            self.broke = True
            raise asyncpg.InternalClientError("cannot switch to state 15; another operation")
        return await super().claim(limit)


async def test_a_worker_outlives_a_failed_claim_and_runs_the_next_job(db: Db):
    queue = _BrokenOnce(db.engine, QueueSpec(name=f"q-{uuid.uuid4().hex[:8]}"))
    ran = asyncio.Event()

    async def handle(job: Job) -> None:
        ran.set()

    await db.enqueue(queue)
    worker = QueueWorker(queue, handle, dsn=db.dsn, service="t", poll_s=0.05)
    worker.start()
    try:
        await eventually(lambda: ran.is_set(), what="the job run after the failed claim")
    finally:
        await worker.stop()
    assert queue.broke


async def test_idle_keys_are_forgotten_and_a_key_with_a_job_is_kept(db: Db):
    queue = db.queue(serial=True, retention_s=0)
    await db.enqueue(queue, key="idle")
    await db.enqueue(queue, key="busy")
    claimed = {j.key: j for j in await queue.claim(10)}
    await queue.complete(claimed["idle"])

    await queue.prune()

    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        keys = await raw.driver_connection.fetch(  # type: ignore[union-attr]
            "SELECT key FROM queue_keys WHERE queue = $1", queue.name
        )
    assert [r["key"] for r in keys] == ["busy"]
    await db.enqueue(queue, key="idle")  # the key comes back with its next job
    (again,) = await queue.claim(10)
    assert again.key == "idle"
