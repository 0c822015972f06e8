"""``waybill-service migrate`` (a migration Job) and ``WAYBILL_MIGRATE_ON_START=false`` (the
Deployments after it): the command migrates and exits; a process that may not migrate refuses
to start on a schema that is not at its head revision, and starts on one that is."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

import waybill.orders
from waybill.common.db import (
    SchemaNotAtHead,
    check_schema_at_head,
    migrate_database,
    plain_dsn,
)
from waybill.devstack.testing import Infra, start_service

pytestmark = pytest.mark.infra

MIGRATIONS = Path(waybill.orders.__file__).parent / "migrations"


async def test_a_process_that_may_not_migrate_checks_the_schema_is_at_head(infra: Infra):
    settings = infra.settings()
    database = await asyncio.to_thread(infra.new_database, "head_check")
    with pytest.raises(SchemaNotAtHead, match=r"revision none, the code needs \['\w+'\]"):
        await check_schema_at_head(settings, database, MIGRATIONS)
    await migrate_database(settings, database, MIGRATIONS)
    await check_schema_at_head(settings, database, MIGRATIONS)


def run(infra: Infra, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**infra.env(), "WAYBILL_LOG_JSON": "true", **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "waybill.orders", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_migrate_command_migrates_and_exits_then_a_checking_process_starts(infra: Infra):
    # A fresh auth database: the command also creates the API keys' schema a cluster needs.
    auth = plain_dsn(infra.settings().database_dsn(f"auth_{uuid.uuid4().hex[:12]}"))
    done = run(infra, "migrate", WAYBILL_AUTH_DATABASE_URL=auth)
    assert done.returncode == 0, done.stderr
    assert "service_migrate_completed" in done.stderr + done.stdout
    assert asyncio.run(has_api_keys_table(auth))
    orders = start_service(infra, "orders", extra_env={"WAYBILL_MIGRATE_ON_START": "false"})
    orders.stop()


async def has_api_keys_table(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT to_regclass('api_keys') IS NOT NULL"))
    finally:
        await conn.close()


def test_an_unknown_command_is_refused_with_the_one_that_exists(infra: Infra):
    refused = run(infra, "migrtae")
    assert refused.returncode != 0
    assert "the only command is `migrate`" in refused.stderr
