"""Slow statements are logged as ``db_query_slow`` (normalised) and counted; fast ones are not.

Both ways into the database are covered: SQLAlchemy statements and the hot-path statements on
the raw asyncpg connection (``db.driver``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import create_engine, driver
from waybill.common.observability.slow_queries import normalise_statement
from waybill.devstack.testing import eventually


@pytest.fixture
async def slow_engine(infra) -> AsyncIterator[tuple[AsyncEngine, str]]:
    database = await asyncio.to_thread(infra.new_database, "slowq")
    engine = create_engine(infra.settings().database_dsn(database), pool_size=1, slow_query_ms=200)
    yield engine, database
    await engine.dispose()


def slow_count(service: str) -> float:
    value = REGISTRY.get_sample_value("waybill_db_slow_queries_total", {"service": service})
    return value or 0.0


async def until_counted(service: str, expected: float) -> None:
    """The asyncpg logger reports on the next loop iteration: wait for it, boundedly."""
    await eventually(
        lambda: slow_count(service) >= expected,
        timeout_s=1,
        interval_s=0.01,
        what=f"{expected} slow statements counted",
    )


async def test_a_slow_sqlalchemy_statement_is_logged_and_counted_a_fast_one_is_not(
    slow_engine,
) -> None:
    engine, service = slow_engine
    with structlog.testing.capture_logs() as logs:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.execute(text("SELECT pg_sleep(0.3), 'secret-literal'"))
            await conn.execute(text("SELECT 2"))
        await until_counted(service, 1)
    slow = [e for e in logs if e["event"] == "db_query_slow"]
    assert [e["statement"] for e in slow] == ["SELECT pg_sleep(?), ?"]
    assert slow[0]["duration_ms"] >= 300
    assert slow[0]["threshold_ms"] == 200
    assert slow_count(service) == 1


async def test_a_slow_driver_statement_is_logged_and_counted_a_fast_one_is_not(
    slow_engine,
) -> None:
    engine, service = slow_engine
    with structlog.testing.capture_logs() as logs:
        async with engine.begin() as conn:
            db = await driver(conn)
            await db.fetchval("SELECT $1::int", 1)
            await db.fetchval("SELECT pg_sleep($1::float8 / 1000)", 300)
            await db.fetchval("SELECT 3")
        await until_counted(service, 1)
        # Give a (wrong) report of the fast statements its chance to arrive too.
        await asyncio.sleep(0)
    slow = [e for e in logs if e["event"] == "db_query_slow"]
    assert [e["statement"] for e in slow] == ["SELECT pg_sleep(?::float8 / ?)"]
    assert slow[0]["duration_ms"] >= 300
    assert slow_count(service) == 1


def test_normalising_strips_literals_parameters_and_in_lists() -> None:
    sql = """
        SELECT o.id, o.data::jsonb -> 'x'  -- a comment
        FROM orders o WHERE o.tenant_id = $1 AND o.total > 42.5
          AND o.status IN ('paid', 'shipped', 'x''y') AND o.v = :version /* note */
        LIMIT 10
    """
    assert normalise_statement(sql) == (
        "SELECT o.id, o.data::jsonb -> ? FROM orders o WHERE o.tenant_id = ? AND o.total > ? "
        "AND o.status IN (?) AND o.v = ? LIMIT ?"
    )
