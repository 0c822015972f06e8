"""Database access for a service: the async engine, the driver under a transaction on the hot
paths, and programmatic Alembic migrations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from waybill.common.failures.classify import lost_connection
from waybill.common.observability.slow_queries import TIMED_CONNECTION, SlowQueryWatch
from waybill.common.settings import WaybillSettings


def async_url(dsn: str) -> str:
    """``dsn`` (any ``postgresql[+driver]://`` URL) as a SQLAlchemy asyncpg URL."""
    url = make_url(dsn).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def plain_dsn(dsn: str) -> str:
    """``dsn`` as a libpq-style URL for asyncpg.connect (LISTEN, advisory locks)."""
    url = make_url(dsn).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def create_engine(
    dsn: str, *, pool_size: int = 10, slow_query_ms: float | None = None
) -> AsyncEngine:
    """An asyncpg-backed engine for ``dsn``; accepts plain ``postgresql://`` URLs too.

    Its statements over ``slow_query_ms`` (unset: ``WAYBILL_SLOW_QUERY_MS``, default 200) are
    logged as ``db_query_slow`` and counted, labelled with the service that owns the database
    (``waybill_orders`` -> ``orders``); see :mod:`waybill.common.observability.slow_queries`.
    """
    engine = create_async_engine(
        async_url(dsn),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A dead connection surfaces as an error on first use and is replaced; pinging on every
        # checkout would add a round trip to every command.
        pool_pre_ping=False,
        pool_recycle=3600,
    )
    if slow_query_ms is None:
        slow_query_ms = WaybillSettings().slow_query_ms
    SlowQueryWatch(service=_service_of(dsn), threshold_ms=slow_query_ms).install(engine)
    return engine


def _service_of(dsn: str) -> str:
    database = make_url(dsn).database or "unknown"
    return database.removeprefix("waybill_")


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under ``conn``, with ``conn``'s transaction (if it has begun
    one, as ``engine.begin()`` does) begun on it.

    For the statements of the hot paths (placing an order, applying a payment outcome, the
    event store's append): SQLAlchemy's execution layer costs about as much CPU per statement
    as asyncpg itself (profiled under the saga load: ~45 % of a service's CPU was database
    client work, half of it SQLAlchemy's), and CPU per statement decides throughput on a small
    machine. SQLAlchemy's asyncpg adapter begins its transaction lazily, at the first
    statement; we ask it to begin now, so whatever runs on the driver is part of the
    transaction SQLAlchemy commits or rolls back. jsonb parameters are passed as JSON text and
    come back decoded (the codecs SQLAlchemy installed on the connection).
    """
    raw = await conn.get_raw_connection()
    adapter = raw.dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    if start is None or not hasattr(adapter, "_transaction"):
        # A SQLAlchemy release without the hook: fail loudly rather than run outside the
        # transaction (tests/integration would catch it on upgrade).
        raise RuntimeError("SQLAlchemy's asyncpg adapter no longer exposes _start_transaction")
    if conn.in_transaction() and getattr(adapter, "_transaction", None) is None:
        try:
            await start()
        except BaseException as exc:
            if lost_connection(exc):  # outside SQLAlchemy's own disconnect handling: tell it
                raw.invalidate(exc)
            raise
    # The pooled connection's TimedConnection (slow-query reports), if the engine has a watch.
    connection: asyncpg.Connection = raw.info.get(TIMED_CONNECTION) or raw.driver_connection
    return connection


def migrate(sync_or_async_dsn: str, script_location: str | Path) -> None:
    """Run Alembic ``upgrade head`` for the migrations in ``script_location``.

    Synchronous (Alembic's env runs its own event loop); from async code call it through
    ``asyncio.to_thread``.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", async_url(sync_or_async_dsn).replace("%", "%%"))
    command.upgrade(config, "head")


def create_databases(server_url: str, names: Iterable[str]) -> None:
    """Create each database on the server if it does not exist yet (idempotent).

    A service creates its own database at start where its role may (the embedded default
    and CI); in production the database exists already and the check is one query. Synchronous
    (it runs its own event loop); from async code call it through ``asyncio.to_thread``.
    """

    async def _create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            for name in names:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
                if not exists:
                    with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                        await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(_create())


# Replicas of one service start together (a rollout): Alembic does not lock, so two of them
# migrating at once could both try the same revision. One advisory lock per database makes
# the second wait and then find nothing to do.
MIGRATION_LOCK_KEY = 0x0_3A1E_3B1C


async def prepare_database(settings: WaybillSettings, database: str, migrations: Path) -> None:
    """What a service does to its database at start: migrate it (``migrate_database``), or,
    with ``WAYBILL_MIGRATE_ON_START=false`` (production, where a migration Job runs
    ``waybill-service migrate`` first), only check that it is at the code's head revision."""
    if settings.migrate_on_start:
        await migrate_database(settings, database, migrations)
    else:
        await check_schema_at_head(settings, database, migrations)


async def migrate_database(settings: WaybillSettings, database: str, migrations: Path) -> None:
    """Create the database where it may, then migrate it to head, one replica at a time."""
    await asyncio.to_thread(create_databases, settings.server_url, [database])
    lock = await asyncpg.connect(settings.asyncpg_dsn(database))
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        await asyncio.to_thread(migrate, settings.database_dsn(database), migrations)
    finally:
        await lock.close()  # ends the session: the lock goes with it


class SchemaNotAtHead(RuntimeError):
    """The database is not at the revision this code needs (the migration Job has not run)."""


def head_revisions(script_location: str | Path) -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(script_location))
    return set(ScriptDirectory.from_config(config).get_heads())


async def check_schema_at_head(settings: WaybillSettings, database: str, migrations: Path) -> None:
    """Fail start-up, naming both revisions, unless ``database`` is at head: a process must
    not serve on a schema older (or newer) than its code."""
    heads = head_revisions(migrations)
    conn = await asyncpg.connect(settings.asyncpg_dsn(database))
    try:
        try:
            rows = await conn.fetch("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            rows = []
    finally:
        await conn.close()
    current = {row["version_num"] for row in rows}
    if current != heads:
        raise SchemaNotAtHead(
            f"database {database} is at revision {sorted(current) or 'none'}, the code needs "
            f"{sorted(heads)}: run `waybill-service migrate` (the migration Job) first, or "
            "set WAYBILL_MIGRATE_ON_START=true"
        )
