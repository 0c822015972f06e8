"""The database alone: ``/health/db`` (the check, its latency, the server's version) and
``/health/pool`` (how much of the connection pool is in use).

Readiness answers "can this instance serve?"; these two answer the operator's next question,
"is it the database, or our pool in front of it?". Both follow readiness' status rules
(200 ``healthy`` / 503 ``unhealthy``) so the same probes and alerts read them.

The pool is unhealthy when it is exhausted: every connection it may open (``size`` +
``max_overflow``) is checked out and requests are waiting for one. A busy pool with headroom
is healthy; that is what it is for.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

CHECK_TIMEOUT_S = 2.0


class DatabaseCheck:
    """Readiness check of a service's own database: ``SELECT 1`` on a pooled connection.

    It keeps its engine so the kit can also serve ``/health/db`` and ``/health/pool`` for it
    (a service passes it once, as the ``database`` readiness check, and gets all three).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def __call__(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def server_version(self) -> str:
        async with self.engine.connect() as conn:
            version = (await conn.execute(text("SHOW server_version"))).scalar_one()
        return str(version)


def pool_usage(engine: AsyncEngine) -> dict[str, Any]:
    """The pool's size, checked-out connections, overflow in use and requests waiting.

    ``waiting`` reads the asyncio queue under SQLAlchemy's async pool (its waiters are not
    exposed otherwise); it is ``None`` when that is not available, e.g. a non-queue pool.
    """
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return {"kind": type(pool).__name__, "size": None, "checked_out": None}
    max_overflow: int = pool._max_overflow
    return {
        "kind": type(pool).__name__,
        "size": pool.size(),
        "max_overflow": max_overflow,
        "checked_out": pool.checkedout(),
        "checked_in": pool.checkedin(),
        "overflow": max(pool.overflow(), 0),
        "waiting": _waiting(pool),
    }


def _waiting(pool: QueuePool) -> int | None:
    queue = getattr(getattr(pool, "_pool", None), "_queue", None)
    getters = getattr(queue, "_getters", None)
    if getters is None:
        return None
    return sum(1 for getter in getters if not getter.done())


def pool_exhausted(usage: dict[str, Any]) -> bool:
    if usage.get("size") is None:
        return False
    limit = usage["size"] + max(usage["max_overflow"], 0)
    return bool(usage["checked_out"] >= limit and (usage["waiting"] or 0) > 0)


async def database_health(check: DatabaseCheck) -> tuple[bool, dict[str, Any]]:
    """(up?, body) of ``/health/db``: the check's latency and the server's version."""
    started = time.perf_counter()
    try:
        version = await asyncio.wait_for(check.server_version(), CHECK_TIMEOUT_S)
    except Exception as exc:  # a failing dependency is a result here, not an error
        error = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        result: dict[str, Any] = {"status": "down", "error": error[:300]}
    else:
        result = {"status": "up", "server_version": version}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    up = result["status"] == "up"
    return up, {"status": "healthy" if up else "unhealthy", "checks": {"database": result}}


def database_health_router(check: DatabaseCheck) -> APIRouter:
    """``/db`` and ``/pool``, for :func:`~waybill.common.http.health.health_router` to mount
    under its ``/health`` prefix."""
    router = APIRouter(tags=["health"])
    unhealthy: dict[int | str, dict[str, Any]] = {
        503: {"description": "The database is down (db) or the pool exhausted (pool)"}
    }

    @router.get("/db", summary="The database check alone", responses=unhealthy)
    async def db() -> JSONResponse:
        up, body = await database_health(check)
        return JSONResponse(body, status_code=200 if up else 503)

    @router.get("/pool", summary="Connection pool use", responses=unhealthy)
    async def pool() -> JSONResponse:
        usage = pool_usage(check.engine)
        exhausted = pool_exhausted(usage)
        body = {"status": "unhealthy" if exhausted else "healthy", "pool": usage}
        return JSONResponse(body, status_code=503 if exhausted else 200)

    return router
