"""Liveness and readiness: ``/health/live`` and ``/health/ready`` (plus ``/health/db`` and
``/health/pool`` when a :class:`DatabaseCheck` is among the checks, see ``db_health``).

Readiness runs every check concurrently, each under :data:`CHECK_TIMEOUT_S`, so one hung
dependency makes the probe answer 503 in about two seconds instead of hanging the probe.
A check is any ``async () -> None`` that raises when its dependency is unusable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.http.db_health import DatabaseCheck, database_health_router

HealthCheck = Callable[[], Awaitable[None]]

CHECK_TIMEOUT_S = 2.0

log = structlog.get_logger(__name__)


async def _run_check(name: str, check: HealthCheck, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout_s)
    except Exception as exc:  # a failing dependency is a result here, not an error
        latency = (time.perf_counter() - started) * 1000
        error = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        log.warning("health_check_failed", check=name, error=error)
        return {"status": "down", "latency_ms": round(latency, 2), "error": error[:300]}
    latency = (time.perf_counter() - started) * 1000
    return {"status": "up", "latency_ms": round(latency, 2)}


async def readiness(
    checks: Mapping[str, HealthCheck], timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[bool, dict[str, Any]]:
    """(all up?, response body) after running ``checks`` concurrently."""
    names = list(checks)
    results = await asyncio.gather(*(_run_check(n, checks[n], timeout_s) for n in names))
    by_name = dict(zip(names, results, strict=True))
    healthy = all(r["status"] == "up" for r in results)
    return healthy, {"status": "healthy" if healthy else "unhealthy", "checks": by_name}


def health_router(checks: Mapping[str, HealthCheck]) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live", summary="The process is running")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/ready",
        summary="Every dependency answers (database, broker)",
        responses={503: {"description": "At least one check is down"}},
    )
    async def ready() -> JSONResponse:
        healthy, body = await readiness(checks)
        return JSONResponse(body, status_code=200 if healthy else 503)

    database = next((c for c in checks.values() if isinstance(c, DatabaseCheck)), None)
    if database is not None:
        router.include_router(database_health_router(database))
    return router


def database_check(engine: AsyncEngine) -> DatabaseCheck:
    """``SELECT 1`` on ``engine`` (a pooled connection each time); also serves /health/db and
    /health/pool for that engine."""
    return DatabaseCheck(engine)


class BrokerCheck:
    """Broker readiness: a metadata request over one long-lived aiokafka client.

    The client is created on first use and kept (a new connection per probe would be slow and
    noisy); it reconnects by itself after a broker restart. A TCP probe first makes a broker
    that is down fail at once rather than after aiokafka's retries. Call :meth:`close` on
    shutdown.
    """

    def __init__(self, bootstrap_servers: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> None:
        await asyncio.wait_for(self._check(), self.timeout_s)

    async def _check(self) -> None:
        await self._tcp_probe()
        client = await self._ensure_client()
        await client.fetch_all_metadata()

    async def _tcp_probe(self) -> None:
        host, _, port = self.bootstrap_servers.split(",")[0].strip().rpartition(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.close()
        await writer.wait_closed()

    async def _ensure_client(self) -> Any:
        from aiokafka.client import AIOKafkaClient

        async with self._lock:
            if self._client is None:
                client = AIOKafkaClient(
                    bootstrap_servers=self.bootstrap_servers,
                    request_timeout_ms=int(self.timeout_s * 1000),
                    client_id="waybill-health",
                )
                try:
                    await client.bootstrap()
                except BaseException:
                    await client.close()
                    raise
                self._client = client
            return self._client

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None:
                await self._client.close()
                self._client = None


def broker_check(bootstrap_servers: str) -> BrokerCheck:
    """A readiness check for the Kafka cluster at ``bootstrap_servers`` (close it on shutdown)."""
    return BrokerCheck(bootstrap_servers)
