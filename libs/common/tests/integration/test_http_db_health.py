"""/health/db and /health/pool on real PostgreSQL: every service gets them from the kit."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from waybill.common.db import create_engine
from waybill.common.http.app import create_app
from waybill.common.http.health import database_check
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import free_port
from waybill.devstack.testing import eventually


def _client(settings: WaybillSettings, engine) -> httpx.AsyncClient:
    app = create_app(
        service="dbhealthtest",
        settings=settings,
        routers=[],
        health_checks={"database": database_check(engine)},
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_health_db_reports_latency_and_server_version(infra) -> None:
    database = await asyncio.to_thread(infra.new_database, "dbhealth")
    engine = create_engine(infra.settings().database_dsn(database), pool_size=2)
    try:
        async with _client(infra.settings(), engine) as http:
            response = await http.get("/health/db")
    finally:
        await engine.dispose()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    check = body["checks"]["database"]
    assert check["status"] == "up"
    assert check["latency_ms"] >= 0
    assert check["server_version"][0].isdigit()


async def test_health_db_is_503_when_the_database_is_unreachable() -> None:
    settings = WaybillSettings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    engine = create_engine(settings.database_dsn("nothing"), pool_size=1)
    try:
        async with _client(settings, engine) as http:
            response = await http.get("/health/db")
    finally:
        await engine.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "down"


async def test_health_pool_counts_checked_out_connections_and_waiters(infra) -> None:
    database = await asyncio.to_thread(infra.new_database, "poolhealth")
    engine = create_engine(infra.settings().database_dsn(database), pool_size=1)
    # pool_size=1 allows one overflow connection: hold both, then make a third caller wait.
    held = [await engine.connect() for _ in range(2)]
    for conn in held:
        await conn.execute(text("SELECT 1"))
    waiter = asyncio.create_task(_one_query(engine))
    try:
        async with _client(infra.settings(), engine) as http:
            exhausted = await _eventually_status(http, 503)
            for conn in held:
                await conn.close()
            await waiter
            relaxed = await http.get("/health/pool")
    finally:
        await engine.dispose()
    assert exhausted["status"] == "unhealthy"
    assert exhausted["pool"] | {"kind": None} == {
        "kind": None,
        "size": 1,
        "max_overflow": 1,
        "checked_out": 2,
        "checked_in": 0,
        "overflow": 1,
        "waiting": 1,
    }
    assert relaxed.status_code == 200
    assert relaxed.json()["status"] == "healthy"
    assert relaxed.json()["pool"]["checked_out"] == 0
    assert relaxed.json()["pool"]["waiting"] == 0


async def _one_query(engine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _eventually_status(http: httpx.AsyncClient, status: int) -> dict:
    response = await eventually(
        lambda: http.get("/health/pool"),
        until=lambda r: r.status_code == status,
        timeout_s=5,
        interval_s=0.01,
        what=f"/health/pool answering {status}",
    )
    body: dict = response.json()
    return body
