"""The emails queue as the notifier builds it (``message_queue``: its QueueSpec, priorities
from ``Priority.rank``), on real PostgreSQL: with a backlog, urgent is claimed before low, and
aging lifts a low job that has waited long enough over fresh urgent ones, so it never starves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import create_engine
from waybill.common.queue import JobQueue, NewJob
from waybill.devstack.testing import Infra
from waybill.notifier import tables
from waybill.notifier.domain.messages import Priority
from waybill.notifier.workers.messages import EMAILS, message_queue

AGING_S = 60.0


@pytest.fixture
async def engine(infra: Infra) -> AsyncIterator[AsyncEngine]:
    name = await asyncio.to_thread(infra.new_database, "notifier_queue")
    engine = create_engine(infra.settings().database_dsn(name))
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
    yield engine
    await engine.dispose()


def _queue(engine: AsyncEngine) -> JobQueue:
    return message_queue(
        engine, EMAILS, timeout_s=10, aging_s=AGING_S, backoff_s=1, backoff_max_s=2
    )


async def _enqueue(queue: JobQueue, jobs: list[tuple[str, Priority, datetime]]) -> None:
    async with queue.engine.begin() as conn:
        await queue.enqueue_many(
            conn,
            [
                NewJob(key=name, payload={"notification_id": name}, priority=p.rank, run_at=at)
                for name, p, at in jobs
            ],
        )


async def test_with_a_backlog_of_low_jobs_an_urgent_one_is_claimed_first(engine: AsyncEngine):
    queue = _queue(engine)
    now = datetime.now(UTC)
    backlog = [(f"low-{i}", Priority.low, now - timedelta(seconds=1)) for i in range(20)]
    await _enqueue(queue, backlog)
    await _enqueue(queue, [("normal", Priority.normal, now), ("urgent", Priority.urgent, now)])

    claimed = [(await queue.claim(1))[0].key for _ in range(3)]  # one free slot at a time

    assert claimed == ["urgent", "normal", "low-0"]


async def test_aging_promotes_a_starving_low_job_over_fresh_urgent_ones(engine: AsyncEngine):
    queue = _queue(engine)
    now = datetime.now(UTC)
    # Due for four aging periods: low (0) + 4 > urgent (3).
    await _enqueue(queue, [("starving-low", Priority.low, now - timedelta(seconds=4 * AGING_S))])
    await _enqueue(queue, [(f"urgent-{i}", Priority.urgent, now) for i in range(5)])
    # Due for two periods only: low + 2 < urgent, it waits its turn.
    await _enqueue(queue, [("younger-low", Priority.low, now - timedelta(seconds=2 * AGING_S))])

    claimed = [(await queue.claim(1))[0].key for _ in range(7)]

    assert claimed[0] == "starving-low"
    assert claimed[-1] == "younger-low"
