"""``db.driver``: statements on the asyncpg connection belong to SQLAlchemy's transaction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.db import create_engine, driver, plain_dsn


@pytest.fixture
async def engine(infra) -> AsyncIterator[AsyncEngine]:
    name = await asyncio.to_thread(infra.new_database, "driver")
    engine = create_engine(infra.settings().database_dsn(name), pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (n int, doc jsonb)"))
    yield engine
    await engine.dispose()


async def notes(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [r.n for r in await conn.execute(text("SELECT n FROM notes ORDER BY n"))]


async def test_driver_statements_commit_with_the_transaction(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await (await driver(conn)).execute("INSERT INTO notes VALUES (1, $1)", json.dumps({"a": 1}))
        await conn.execute(text("INSERT INTO notes VALUES (2, NULL)"))
    assert await notes(engine) == [1, 2]
    async with engine.connect() as conn:
        doc = await (await driver(conn)).fetchval("SELECT doc FROM notes WHERE n = 1")
    assert doc == {"a": 1}  # jsonb comes back decoded


async def test_driver_statements_roll_back_with_the_transaction(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await (await driver(conn)).execute("INSERT INTO notes VALUES (3, NULL)")
            raise RuntimeError("the command failed after its first statement")
    assert await notes(engine) == []


async def test_reads_outside_a_transaction_leave_the_pooled_connection_clean(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        assert await (await driver(conn)).fetchval("SELECT count(*) FROM notes") == 0
    async with engine.connect() as conn:  # the pool has one connection: the same one again
        assert not (await driver(conn)).is_in_transaction()
    async with engine.begin() as conn:
        await (await driver(conn)).execute("INSERT INTO notes VALUES (4, NULL)")
    assert await notes(engine) == [4]


async def test_a_connection_that_died_under_the_driver_is_not_handed_out_again(
    engine: AsyncEngine,
) -> None:
    # As after a database restart: the server ends the pooled connection's session.
    async with engine.connect() as conn:
        pid = await (await driver(conn)).fetchval("SELECT pg_backend_pid()")
    killer = await asyncpg.connect(plain_dsn(engine.url.render_as_string(hide_password=False)))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a dead session
        async with engine.begin() as conn:
            await (await driver(conn)).fetchval("SELECT 1")
    async with engine.begin() as conn:  # the dead one was discarded, not pooled again
        assert await (await driver(conn)).fetchval("SELECT pg_backend_pid()") != pid
