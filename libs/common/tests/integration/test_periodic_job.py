"""The leader-locked periodic job on real PostgreSQL: one leader per database, run-now, metrics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import create_engine
from waybill.common.jobs import PeriodicJob


@pytest.fixture(scope="module")
async def engine(infra) -> AsyncIterator[AsyncEngine]:
    name = await asyncio.to_thread(infra.new_database, "jobs")
    engine = create_engine(infra.settings().database_dsn(name), pool_size=4)
    yield engine
    await engine.dispose()


async def test_only_one_replica_runs_a_periodic_turn_at_a_time(engine: AsyncEngine):
    name = f"sweep-{uuid.uuid4().hex[:6]}"
    release, running = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def slow_sweep(who: str = "periodic") -> int:
        runs.append(who)
        running.set()
        await release.wait()
        return 7

    leader = PeriodicJob(engine, slow_sweep, name=name, interval_s=60, service="t")
    replica = PeriodicJob(engine, slow_sweep, name=name, interval_s=60, service="t")
    leading = asyncio.create_task(leader.run_if_leader())
    await asyncio.wait_for(running.wait(), 10)

    skipped = await replica.run_if_leader()
    release.set()

    assert skipped is None
    assert await leading == 7
    assert await replica.run_if_leader() == 7  # the lock was released after the run
    assert runs == ["periodic", "periodic"]


async def test_run_now_runs_with_its_arguments_whoever_leads_and_records_metrics(
    engine: AsyncEngine,
):
    name = f"sync-{uuid.uuid4().hex[:6]}"

    async def sync(older_than_s: float = 30.0) -> float:
        return older_than_s

    job = PeriodicJob(engine, sync, name=name, interval_s=60, service="t")
    async with engine.connect() as conn:  # another replica leads right now
        await conn.exec_driver_sql(f"SELECT pg_advisory_lock({job.lock_key})")
        assert await job.run_if_leader() is None
        assert await job.run_now(older_than_s=0.0) == 0.0
        await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({job.lock_key})")

    labels = {"service": "t", "job": name}
    assert (
        REGISTRY.get_sample_value(
            "waybill_periodic_job_runs_total", {**labels, "outcome": "succeeded"}
        )
        == 1
    )
    assert (
        REGISTRY.get_sample_value(
            "waybill_periodic_job_runs_total", {**labels, "outcome": "skipped"}
        )
        == 1
    )
    assert REGISTRY.get_sample_value("waybill_periodic_job_last_run_timestamp_seconds", labels) > 0
    assert REGISTRY.get_sample_value("waybill_periodic_job_last_duration_seconds", labels) >= 0
