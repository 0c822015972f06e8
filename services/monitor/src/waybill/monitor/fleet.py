"""What the monitor gathers from every service over HTTP: outbox backlog, circuit-breaker
states, its consumer groups' duplicates and its third-party calls from its ``/metrics``
(parsed with ``prometheus_client.parser``; the last two in ``exposition``), and its work queues
from ``GET /admin/queues`` (with the caller's own admin key: each service shows the caller's
tenant's jobs, as it would to the caller).

Every read is bounded (``timeout_s``) and read in parallel; a service that does not answer (or
answers garbage) is shown with ``status: "unknown"`` rather than failing the whole view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.observability.metrics import render_latest
from waybill.common.queue import JobQueue, queue_stats, recent_jobs
from waybill.common.queue.admin import RECENT_JOBS
from waybill.monitor.exposition import read_operations

BACKLOG = "waybill_outbox_backlog"
BREAKER = "waybill_circuit_breaker_state"
BREAKER_STATES = {0: "closed", 1: "half_open", 2: "open"}


def parse_metrics(text: str) -> dict[str, Any]:
    """The outbox backlog (summed over the samples: one per service label) and each breaker's
    state by dependency, from a Prometheus text exposition."""
    backlog: float | None = None
    breakers: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if family.name == BACKLOG:
            for sample in family.samples:
                backlog = (backlog or 0.0) + sample.value
        elif family.name == BREAKER:
            for sample in family.samples:
                dependency = sample.labels.get("dependency", "")
                breakers[dependency] = BREAKER_STATES.get(int(sample.value), "unknown")
    return {"outbox_backlog": None if backlog is None else int(backlog), "breakers": breakers}


async def scrape(client: httpx.AsyncClient, url: str, timeout_s: float) -> dict[str, Any]:
    try:
        answer = await client.get(f"{url}/metrics", timeout=timeout_s)
        answer.raise_for_status()
        return {"status": "ok", **parse_metrics(answer.text), **read_operations(answer.text)}
    except Exception as exc:  # an absent or broken service is a result here: unknown
        return {
            "status": "unknown",
            "outbox_backlog": None,
            "breakers": {},
            "idempotency": [],
            "integrations": [],
            "error": _why(exc),
        }


def own_operations() -> dict[str, list[dict[str, Any]]]:
    """The monitor's own consumer group and calls, read from its own registry (what its
    ``/metrics`` answers), in process."""
    text, _ = render_latest()
    return read_operations(text.decode())


async def service_queues(
    client: httpx.AsyncClient, url: str, timeout_s: float, authorization: str
) -> dict[str, Any]:
    """One service's ``/admin/queues``: ``ok`` with its queues and recent jobs, ``none`` when
    it has no work queues (404), else ``unknown``."""
    try:
        answer = await client.get(
            f"{url}/admin/queues", headers={"Authorization": authorization}, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        return {"status": "unknown", "queues": [], "recent_jobs": [], "error": _why(exc)}
    if answer.status_code == 404:
        return {"status": "none", "queues": [], "recent_jobs": []}
    try:
        if answer.status_code != 200:
            raise ValueError(answer.status_code)
        body = answer.json()
        queues, jobs = list(body["queues"]), list(body["recent_jobs"])
    except (ValueError, TypeError, KeyError):
        return {
            "status": "unknown",
            "queues": [],
            "recent_jobs": [],
            "error": f"HTTP {answer.status_code}",
        }
    return {"status": "ok", "queues": queues, "recent_jobs": jobs}


async def gather(
    urls: Mapping[str, str], read: Callable[[str], Awaitable[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    names = list(urls)
    found = await asyncio.gather(*(read(urls[name]) for name in names))
    return dict(zip(names, found, strict=True))


def _why(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


async def own_queues(
    engine: AsyncEngine, queues: Sequence[JobQueue], tenant_id: str
) -> dict[str, Any]:
    """The monitor's own work queues, read in process (what its ``/admin/queues`` answers)."""
    names = [queue.name for queue in queues]
    stats = await queue_stats(engine, names)
    jobs = await recent_jobs(engine, tenant_id, names, RECENT_JOBS)
    return {
        "status": "ok",
        "queues": [
            {
                "name": s.queue,
                "depth": s.depth,
                "running": s.running,
                "failed": s.failed,
                "oldest_waiting_s": round(s.oldest_waiting_s, 3),
            }
            for s in stats
        ],
        "recent_jobs": [asdict(job) for job in jobs],
    }
