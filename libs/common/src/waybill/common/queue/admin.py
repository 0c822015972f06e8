"""``GET /admin/queues`` (CONTRACT.md § every service): a router a service mounts with its
queues -- per queue depth, running, failed and oldest waiting age, and the caller's tenant's
last 20 jobs.

No ``from __future__ import annotations`` here: FastAPI must see the route's ``Depends`` on the
closure's ``tenant_of`` as an object, not as a string it cannot resolve.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from waybill.common.queue.store import JobQueue, JobSummary, queue_stats, recent_jobs

RECENT_JOBS = 20


class QueueView(BaseModel):
    name: str
    depth: int
    running: int
    failed: int
    oldest_waiting_s: float


class QueuesView(BaseModel):
    queues: list[QueueView]
    # The store's own record: pydantic validates and documents a dataclass as it is.
    recent_jobs: list[JobSummary]


def queues_router(
    engine: AsyncEngine,
    queues: Sequence[JobQueue],
    tenant_of: Callable[..., Awaitable[str | None]],
) -> APIRouter:
    """The route over ``queues`` (all on ``engine``); ``tenant_of`` is the dependency that
    authorises the caller and names its tenant (None: a process without tenants)."""
    names = [queue.name for queue in queues]
    router = APIRouter(tags=["admin"])

    @router.get("/admin/queues", response_model=QueuesView)
    async def get_queues(tenant_id: Annotated[str | None, Depends(tenant_of)]) -> QueuesView:
        """The service's work queues and the caller's last jobs on them, newest first."""
        stats = await queue_stats(engine, names)
        jobs = await recent_jobs(engine, tenant_id, names, RECENT_JOBS)
        return QueuesView(
            queues=[
                QueueView(
                    name=s.queue,
                    depth=s.depth,
                    running=s.running,
                    failed=s.failed,
                    oldest_waiting_s=round(s.oldest_waiting_s, 3),
                )
                for s in stats
            ],
            recent_jobs=list(jobs),
        )

    return router
