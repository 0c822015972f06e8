"""Every service's migrations build exactly the schema its ``tables`` declare: upgrade a fresh
database to head, then let Alembic compare it with the metadata (no drift in either direction),
and downgrade to nothing and up again (every revision reverses)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from waybill.common.db import async_url, migrate
from waybill.devstack.testing import Infra

pytestmark = pytest.mark.infra

SERVICES = ("orders", "payments", "shipping", "notifier", "monitor", "sandbox")


def _service(name: str) -> tuple[MetaData, Path]:
    tables = importlib.import_module(f"waybill.{name}.tables")
    package = importlib.import_module(f"waybill.{name}")
    return tables.metadata, Path(package.__file__).parent / "migrations"


@pytest.mark.parametrize("name", SERVICES)
async def test_the_migrations_build_exactly_the_declared_schema_and_reverse(
    infra: Infra, name: str
):
    metadata, migrations = _service(name)
    database = await asyncio.to_thread(infra.new_database, f"mig_{name}")
    dsn = infra.settings().database_dsn(database)
    await asyncio.to_thread(migrate, dsn, migrations)

    engine = create_async_engine(async_url(dsn))
    try:
        async with engine.connect() as conn:
            drift = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    assert drift == [], drift

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", async_url(dsn).replace("%", "%%"))
    await asyncio.to_thread(command.downgrade, config, "base")
    await asyncio.to_thread(command.upgrade, config, "head")
