"""Readiness reflects the real database and broker; /metrics is Prometheus text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from waybill.common.http.app import create_app
from waybill.common.http.health import broker_check, database_check, readiness
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import free_port


def _client(infra, checks: Mapping[str, Callable[[], Awaitable[None]]]) -> httpx.AsyncClient:
    app = create_app(
        service="healthtest", settings=infra.settings(), routers=[], health_checks=checks
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_ready_is_200_when_database_and_broker_answer(infra) -> None:
    database = await asyncio.to_thread(infra.new_database, "health")
    engine = create_async_engine(infra.settings().database_dsn(database))
    broker = broker_check(infra.bootstrap_servers)
    try:
        async with _client(infra, {"database": database_check(engine), "broker": broker}) as http:
            response = await http.get("/health/ready")
            metrics = await http.get("/metrics")
    finally:
        await broker.close()
        await engine.dispose()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) == {"database", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "up"
        assert check["latency_ms"] >= 0
    assert 'route="/health/ready",service="healthtest",status="200"' in metrics.text


async def test_ready_is_503_fast_when_the_database_port_is_closed(infra) -> None:
    settings = WaybillSettings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    engine = create_async_engine(settings.database_dsn("nothing"))
    broker = broker_check(infra.bootstrap_servers)
    try:
        async with _client(infra, {"database": database_check(engine), "broker": broker}) as http:
            started = time.monotonic()
            response = await http.get("/health/ready")
            elapsed = time.monotonic() - started
    finally:
        await broker.close()
        await engine.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["broker"]["status"] == "up"
    assert elapsed < 3.0


async def test_broker_check_fails_fast_when_no_broker_listens() -> None:
    check = broker_check(f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    try:
        healthy, body = await readiness({"broker": check})
    finally:
        await check.close()
    assert not healthy
    assert body["checks"]["broker"]["status"] == "down"
    assert time.monotonic() - started < 3.0


async def test_a_hung_check_times_out_instead_of_hanging_the_probe() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def fine() -> None:
        return None

    healthy, body = await readiness({"hangs": hangs, "fine": fine}, timeout_s=0.2)
    assert not healthy
    assert body["checks"]["hangs"] == {
        "status": "down",
        "latency_ms": body["checks"]["hangs"]["latency_ms"],
        "error": "timed out",
    }
    assert body["checks"]["fine"]["status"] == "up"
