"""The body of every service's ``migrations/env.py``: Alembic on the async engine.

A service's env.py is two lines::

    from waybill.common.alembic_env import run_migrations_env
    run_migrations_env(target_metadata)

The URL comes from the Alembic config (``waybill.common.db.migrate`` sets it), or from the
``-x url=...`` argument of the alembic command line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from waybill.common.db import async_url


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: use waybill.common.db.migrate or alembic -x url=...")
    return async_url(url)


# Replicas starting together all call migrate(); the transaction-scoped advisory lock makes
# them take turns, so the second finds the schema at head instead of racing the first.
MIGRATION_LOCK_KEY = 0x57A7_0A1E


def _run_sync(connection: Connection, target_metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_online(target_metadata: MetaData) -> None:
    # NullPool: a migration is one short session; nothing to keep open afterwards.
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync, target_metadata)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_env(target_metadata: MetaData) -> None:
    """Run the migrations Alembic asked for, offline (SQL script) or online."""
    if context.is_offline_mode():
        context.configure(
            url=_url(),
            target_metadata=target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_online(target_metadata))
        return
    # Called from inside a running loop (e.g. a service's async startup calling migrate()):
    # asyncio.run would refuse, so the migration gets a loop of its own on a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, _run_online(target_metadata)).result()
