"""``PeriodicJob``: one leader per database runs ``work`` every ``interval_s``; anyone may run
it now.

Leadership is a session-level ``pg_try_advisory_lock`` taken for each run (key derived from
the job's name, so one lock per job per database): a replica that cannot take it skips its
turn. The jobs we run this way (reservation expiry, payment sync, ...) are idempotent -- the
decider ignores news it already has -- so the lock saves work, it is not what makes them
correct; that is also why ``run_now`` (an operator's or a test's run, with its own arguments)
does not wait for it, and returns what the run did.

Each run is an ``<name> run`` span: the root of a trace for a periodic run, a child of the
request's span for ``run_now``; the events a run appends are in that trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec, TypeVar, cast

import asyncpg
import structlog
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.failures.classify import database_unreachable
from waybill.common.jobs.metrics import JOB_LAST_DURATION, JOB_LAST_RUN, JOB_RUNS

P = ParamSpec("P")
R = TypeVar("R")
log = structlog.get_logger(__name__)
_tracer = trace.get_tracer(__name__)
UNAVAILABLE = (OperationalError, DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for the job called ``name``."""
    return int.from_bytes(
        hashlib.sha256(f"waybill.jobs.{name}".encode()).digest()[:8], "big", signed=True
    )


class PeriodicJob(Generic[P, R]):
    """``work``'s parameters must all have defaults: the periodic run passes none."""

    def __init__(
        self,
        engine: AsyncEngine,
        work: Callable[P, Awaitable[R]],
        *,
        name: str,
        interval_s: float,
        service: str,
    ) -> None:
        self.engine = engine
        self.work = work
        self.name = name
        self.interval_s = interval_s
        self.service = service
        self.lock_key = lock_key(name)
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    async def run_now(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run once, now, with these arguments, whoever leads; returns the run's result."""
        return await self._timed(lambda: self.work(*args, **kwargs))

    async def _timed(self, run: Callable[[], Awaitable[R]]) -> R:
        started = time.perf_counter()
        with _tracer.start_as_current_span(
            f"{self.name} run", attributes={"waybill.job.name": self.name}
        ):
            try:
                result = await run()
            except Exception:
                self._record("failed", started)
                raise
        self._record("succeeded", started)
        return result

    async def run_if_leader(self) -> R | None:
        """One periodic run (default arguments) if no other replica is running one."""
        async with self.engine.connect() as conn:
            held = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.lock_key})
            await conn.commit()
            if not held:
                JOB_RUNS.labels(self.service, self.name, "skipped").inc()
                return None
            try:
                # ``work``'s parameters all have defaults: the periodic run uses them.
                return await self._timed(cast(Callable[[], Awaitable[R]], self.work))
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.lock_key})
                await conn.commit()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_if_leader()
            except Exception as exc:
                # One failed turn must not end the job: the next turn comes at the interval.
                if isinstance(exc, UNAVAILABLE) or database_unreachable(exc):
                    log.warning("periodic_job_run_failed", job=self.name, error=repr(exc))
                else:
                    log.exception("periodic_job_run_failed", job=self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=self.interval_s)
            self._woken.clear()

    def wake(self) -> None:
        """Make this process's next periodic turn start now rather than at the interval (e.g.
        new work was committed here); a replica that is not leading then just skips it."""
        self._woken.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name=f"periodic-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _record(self, outcome: str, started: float) -> None:
        JOB_RUNS.labels(self.service, self.name, outcome).inc()
        JOB_LAST_DURATION.labels(self.service, self.name).set(time.perf_counter() - started)
        JOB_LAST_RUN.labels(self.service, self.name).set(time.time())
