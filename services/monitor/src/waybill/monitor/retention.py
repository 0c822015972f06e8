"""Retention of dead letters: resolved and abandoned ones whose last change is older than
``WAYBILL_MONITOR_DLQ_RETENTION_S`` (default 30 days) are deleted, with their audit trail, by
a kit ``PeriodicJob`` (one leader per database). A dead letter that is not finished
(``pending``, ``retrying``) is never deleted, however old.

Each round deletes at most ``BATCH`` rows in one transaction, locking them with ``SKIP
LOCKED`` and checking the status again under the lock in the ``DELETE`` itself: a dead letter
that a retry's failure sets back to ``pending`` concurrently is not deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.jobs import PeriodicJob
from waybill.monitor.tables import dead_letter_audit, dead_letters

log = structlog.get_logger(__name__)

FINISHED = ("resolved", "abandoned")
BATCH = 1000


async def purge(engine: AsyncEngine, older_than: timedelta) -> int:
    """Delete finished dead letters last changed before ``older_than`` ago; how many."""
    before = datetime.now(UTC) - older_than
    c = dead_letters.c
    finished_before = (c.status.in_(FINISHED), c.updated_at < before)
    deleted = 0
    while True:
        async with engine.begin() as conn:
            due = (
                select(c.id)
                .where(*finished_before)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            ids = (
                (
                    await conn.execute(
                        delete(dead_letters).where(c.id.in_(due), *finished_before).returning(c.id)
                    )
                )
                .scalars()
                .all()
            )
            if ids:
                await conn.execute(
                    delete(dead_letter_audit).where(dead_letter_audit.c.dead_letter_id.in_(ids))
                )
        deleted += len(ids)
        if len(ids) < BATCH:
            break
    if deleted:
        log.info("monitor_dead_letters_purged", deleted=deleted, before=before.isoformat())
    return deleted


def retention_job(
    engine: AsyncEngine, *, retention_s: float, interval_s: float, service: str
) -> PeriodicJob[[], int]:
    async def run() -> int:
        return await purge(engine, timedelta(seconds=retention_s))

    return PeriodicJob(
        engine, run, name="dead-letter-retention", interval_s=interval_s, service=service
    )
