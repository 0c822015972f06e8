"""Pausing a consumer while its own database is unreachable, instead of spending retries.

A record's retry budget (``backoff.RetryPolicy.attempts``) is for failures of the record: a handler
that trips over a deadlock, a provider blip. When the consumer's own database is down, every
record fails the same way, and spending their budgets only dead-letters good records (we saw
an ``order.placed`` dead-lettered after a 30 s PostgreSQL restart, its order then stuck in
``pending_payment``). So after a retryable failure the processor asks ``DependencyPause``:

- if the database does not answer a probe, the consumer pauses: it keeps the record (no
  commit, no dead letter, no attempt counted), probes again with capped, jittered backoff and
  resumes the record when the database answers;
- if it answers but the failure was a lost connection (a pooled connection that died with the
  old server), the pool is refreshed and the record is tried again, once, for free;
- otherwise the failure is the record's, and it spends an attempt.

The broker half of the same rule lives in ``DeadLetterPublisher.publish``, which keeps trying
until the broker has the dead letter. While paused the consumer fetches nothing (the batch has
not returned); a pause longer than Kafka's ``max.poll.interval.ms`` (5 min) costs a rebalance,
after which the inbox absorbs the redelivered records.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.backoff import Backoff
from waybill.common.failures.classify import lost_connection

log = structlog.get_logger(__name__)

# Capped so a consumer resumes within seconds of its database answering again.
PROBE_BACKOFF = Backoff(base_s=0.2, factor=2, max_s=5)
PROBE_TIMEOUT_S = 5.0


class DependencyPause:
    """Decides whether a failure is the database's, and waits until it answers again."""

    def __init__(
        self, engine: AsyncEngine, *, group: str, backoff: Backoff = PROBE_BACKOFF
    ) -> None:
        self._engine = engine
        self._group = group
        self._backoff = backoff

    async def absorbs(self, exc: BaseException, *, refreshed: bool) -> bool:
        """True when ``exc`` must not count against the record: the database was (or still
        is) unreachable, and it answers now. ``refreshed``: the pool was already refreshed
        for this record once while the database answered (a second lost connection with a
        healthy database is the record's failure)."""
        if not await self._reachable():
            await self._wait_until_reachable(exc)
            await self._refresh_pool()
            return True
        if lost_connection(exc) and not refreshed:
            await self._refresh_pool()
            return True
        return False

    async def _reachable(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S), self._engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def _wait_until_reachable(self, cause: BaseException) -> None:
        started = time.monotonic()
        log.warning(
            "consumer_pause_started",
            group=self._group,
            dependency="database",
            error=f"{type(cause).__name__}: {cause}",
        )
        probe = 0
        while True:
            probe += 1
            await asyncio.sleep(self._backoff.delay(min(probe, 16)))
            if await self._reachable():
                break
        log.info(
            "consumer_pause_ended",
            group=self._group,
            dependency="database",
            paused_s=round(time.monotonic() - started, 3),
            probes=probe,
        )

    async def _refresh_pool(self) -> None:
        # Connections pooled before the outage point at a server that is gone; checked-out
        # ones are left to their holders (close=False) and discarded when returned.
        await self._engine.dispose(close=False)
