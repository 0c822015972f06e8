"""``GET /api/health``: every service's readiness, polled now, rolled up (CONTRACT.md § monitor).

``healthy`` when every service is ready; ``unhealthy`` when orders (the entry of every order)
is not, or the broker or a database is down (a service's own check says so, or the monitor's);
else ``degraded``. Each poll is bounded (``monitor_health_timeout_s``): a hung service reads as
down rather than holding the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import httpx

Overall = Literal["healthy", "degraded", "unhealthy"]
CRITICAL_SERVICE = "orders"
CRITICAL_CHECKS = ("broker", "database")


def roll_up(services: Mapping[str, Mapping[str, Any]], own: Mapping[str, str]) -> Overall:
    """The overall status of ``services`` (name -> its detail) and the monitor's ``own``
    checks (name -> up|down)."""
    if any(own.get(name) == "down" for name in CRITICAL_CHECKS):
        return "unhealthy"
    if services.get(CRITICAL_SERVICE, {}).get("status") != "healthy":
        return "unhealthy"
    for detail in services.values():
        checks = detail.get("checks") or {}
        if any((checks.get(name) or {}).get("status") == "down" for name in CRITICAL_CHECKS):
            return "unhealthy"
    if all(detail.get("status") == "healthy" for detail in services.values()):
        return "healthy"
    return "degraded"


async def poll(client: httpx.AsyncClient, url: str, timeout_s: float) -> dict[str, Any]:
    """One service's readiness: ``healthy|unhealthy|unreachable``, its checks and latency."""
    started = time.perf_counter()
    try:
        answer = await client.get(f"{url}/health/ready", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return {
            "status": "unreachable",
            "url": url,
            "latency_ms": _since(started),
            "error": type(exc).__name__,
        }
    try:
        body = answer.json()
    except ValueError:
        body = {}
    ready = answer.status_code == 200
    return {
        "status": "healthy" if ready else "unhealthy",
        "url": url,
        "latency_ms": _since(started),
        "checks": body.get("checks", {}) if isinstance(body, dict) else {},
    }


async def service_health(
    client: httpx.AsyncClient,
    urls: Mapping[str, str],
    timeout_s: float,
    own_checks: Mapping[str, Callable[[], Awaitable[None]]],
) -> dict[str, Any]:
    """The answer of ``/api/health``."""
    names = list(urls)
    details = await asyncio.gather(*(poll(client, urls[name], timeout_s) for name in names))
    services = dict(zip(names, details, strict=True))
    own = dict(
        zip(
            own_checks,
            await asyncio.gather(*(_check(check, timeout_s) for check in own_checks.values())),
            strict=True,
        )
    )
    return {"status": roll_up(services, own), "services": services, "monitor": own}


async def _check(check: Callable[[], Awaitable[None]], timeout_s: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout_s)
    except Exception:  # a failing dependency is a result here: reported as down
        return "down"
    return "up"


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
