"""HTTP routes of the monitor's admin API (CONTRACT.md § monitor). Thin: parse, authorise, call,
map. Every route is a tenant's admins' own: another tenant's dead letter is 404."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.convertors import Convertor, register_url_convertor

from waybill.common.auth import Principal, require_role
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.openapi import problem_responses
from waybill.common.http.pagination import Page, PageParams, page_params
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.monitor import fleet, health, overview
from waybill.monitor.bulk import BulkJobs
from waybill.monitor.dead_letters import DeadLetters
from waybill.monitor.domain import errors
from waybill.monitor.domain.lifecycle import Status
from waybill.monitor.export import csv_rows
from waybill.monitor.exposition import of_service
from waybill.monitor.ingest import SERVICE
from waybill.monitor.schemas import BulkIn, RetryIn
from waybill.monitor.settings import MonitorSettings
from waybill.monitor.views import (
    BulkCount,
    BulkJobCreated,
    DeadLetterDetail,
    DeadLetterView,
    Feed,
    GroupView,
    HealthView,
    JobView,
    Overview,
    QueuesOverview,
)


class DeadLetterIdConvertor(Convertor[str]):
    """A path segment that is a dead letter's id: ``/api/dlq/bulk`` (POST) is then no
    ``GET /api/dlq/{dead_letter_id}``, so a wrong method on it is told ``Allow: POST`` only."""

    regex = "dlq_[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("dead_letter_id", DeadLetterIdConvertor())
router = APIRouter(prefix="/api", tags=["monitor"])
Admin = Annotated[Principal, Depends(require_role("admin"))]


async def admin_tenant(admin: Admin) -> str:
    """Who may read the monitor's own ``GET /admin/queues``: a tenant's admins."""
    return admin.tenant_id


DeadLetterId = Annotated[str, Path(pattern=r"^dlq_[0-9a-f]{32}$")]
JobId = Annotated[str, Path(pattern=r"^job_[0-9a-f]{32}$")]
NOT_FOUND = problem_responses({404: ["DEAD_LETTER_NOT_FOUND"]})

# The one place the monitor's error codes meet HTTP (STYLE.md #14), handed to create_app.
ERROR_STATUS: ErrorStatus = {
    errors.MonitorError.code: 409,
    errors.DeadLetterNotFound.code: 404,
    errors.DeadLetterNotPending.code: 409,
    errors.InvalidEventData.code: 422,
    errors.DataNotEditable.code: 422,
    errors.RetryUnavailable.code: 503,
    errors.JobNotFound.code: 404,
    errors.JobFinished.code: 409,
}


async def dead_letters(request: Request) -> DeadLetters:
    return request.app.state.dead_letters  # type: ignore[no-any-return]


Letters = Annotated[DeadLetters, Depends(dead_letters)]


async def bulk_jobs(request: Request) -> BulkJobs:
    return request.app.state.bulk_jobs  # type: ignore[no-any-return]


Jobs = Annotated[BulkJobs, Depends(bulk_jobs)]
Name = Annotated[str | None, Query(min_length=1, max_length=200)]


async def dead_letter_filters(
    status: Annotated[Status | None, Query()] = None,
    failure_type: Name = None,
    service: Name = None,
    consumer_group: Name = None,
    fingerprint: Name = None,
) -> dict[str, str | None]:
    """The filters of the dead-letter lists (each: equal to; absent: any)."""
    return {
        "status": status,
        "failure_type": failure_type,
        "service": service,
        "consumer_group": consumer_group,
        "fingerprint": fingerprint,
    }


Filters = Annotated[dict[str, str | None], Depends(dead_letter_filters)]
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/overview", response_model=Overview)
async def get_overview(request: Request, admin: Admin) -> Overview:
    """The tenant's orders, shipments, payments, revenue, webhook deliveries, notifications and
    dead letters, by status; and, read now: consumer lag per group and partition (from the
    broker), each service's outbox backlog and circuit breakers (from its ``/metrics``; a
    service that does not answer is ``unknown``), service health (``/api/health``), and,
    fleet-wide (not per tenant), each consumer group's duplicates skipped (``idempotency``)
    and each service's third-party calls (``integrations``), from its ``/metrics`` too: the
    figures of the one replica the monitor reaches, since that process started."""
    return await full_overview(request, admin.tenant_id)


async def full_overview(request: Request, tenant_id: str) -> Overview:
    """``/api/overview``'s figures for ``tenant_id`` (the UI's pages show the same ones)."""
    state = request.app.state
    settings: MonitorSettings = state.settings
    timeout_s = settings.monitor_scrape_timeout_s

    async def metrics_of(url: str) -> dict[str, Any]:
        return await fleet.scrape(state.health_client, url, timeout_s)

    figures, lag, scraped, healthy = await asyncio.gather(
        overview.overview(state.engine, tenant_id),
        state.operations.lag.read(),
        fleet.gather(settings.service_urls(), metrics_of),
        _health(request),
    )
    return Overview.model_validate(
        {
            **figures,
            "consumer_lag": lag,
            "outbox_backlog": {
                name: {k: found[k] for k in ("status", "outbox_backlog", "error") if k in found}
                for name, found in scraped.items()
            },
            "circuit_breakers": {
                name: {
                    "status": found["status"],
                    "breakers": found["breakers"],
                    **({"error": found["error"]} if "error" in found else {}),
                }
                for name, found in scraped.items()
            },
            "service_health": healthy,
            **_operations(scraped),
        }
    )


def _operations(scraped: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each service's consumer groups and third-party calls as it reports them about itself,
    and the monitor's own (its registry, in process)."""
    sources = {**scraped, SERVICE: fleet.own_operations()}
    return {
        part: [row for name, found in sources.items() for row in of_service(found[part], name)]
        for part in ("idempotency", "integrations")
    }


async def _health(request: Request) -> dict[str, Any]:
    settings: MonitorSettings = request.app.state.settings
    return await health.service_health(
        request.app.state.health_client,
        settings.service_urls(),
        settings.monitor_health_timeout_s,
        request.app.state.own_checks,
    )


@router.get("/queues", response_model=QueuesOverview)
async def get_queues(request: Request, admin: Admin) -> QueuesOverview:
    """Every service's work queues (its ``GET /admin/queues``, asked with the caller's own key:
    depth, running, failed, oldest waiting age, the tenant's last jobs), the monitor's own
    included; ``none``: a service without work queues, ``unknown``: one that did not answer."""
    state = request.app.state
    settings: MonitorSettings = state.settings
    authorization = request.headers.get("authorization", "")

    async def queues_of(url: str) -> dict[str, Any]:
        return await fleet.service_queues(
            state.health_client, url, settings.monitor_scrape_timeout_s, authorization
        )

    services = await fleet.gather(settings.service_urls(), queues_of)
    services["monitor"] = await fleet.own_queues(
        state.engine, [state.operations.queue], admin.tenant_id
    )
    return QueuesOverview.model_validate({"services": services})


@router.get("/events", response_model=Feed)
async def recent_events(request: Request, admin: Admin) -> Feed:
    """The tenant's last 100 events the monitor consumed, newest first."""
    items = await overview.recent(request.app.state.engine, admin.tenant_id)
    return Feed.model_validate({"items": [{**i, "event_id": str(i["event_id"])} for i in items]})


@router.get("/health", response_model=HealthView)
async def get_health(request: Request, admin: Admin) -> HealthView:
    """Every service's readiness, polled now: ``healthy`` when all are ready, ``unhealthy`` when
    orders, the broker or a database is down, else ``degraded``."""
    return HealthView.model_validate(await _health(request))


@router.get("/dlq", response_model=Page[DeadLetterView])
async def list_dead_letters(
    svc: Letters, admin: Admin, filters: Filters, page: Paging
) -> Page[DeadLetterView]:
    """The tenant's dead letters, newest first."""
    rows, last = await svc.page(
        admin.tenant_id, filters, limit=page.limit, after=position_from_cursor(page.after)
    )
    return Page[DeadLetterView](
        items=[DeadLetterView.from_row(r) for r in rows], next_cursor=next_cursor(last)
    )


@router.get("/dlq/groups", response_model=Page[GroupView])
async def dead_letter_groups(
    svc: Letters, admin: Admin, filters: Filters, page: Paging
) -> Page[GroupView]:
    """The tenant's dead letters by fingerprint (one failure, however often): count, pending,
    first and last seen; the most recently seen first."""
    rows, last = await svc.groups(
        admin.tenant_id, filters, limit=page.limit, after=position_from_cursor(page.after)
    )
    return Page[GroupView](
        items=[GroupView.from_row(r) for r in rows], next_cursor=next_cursor(last)
    )


@router.get(
    "/dlq/export.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "one row per dead letter, the list's columns, newest first",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def export_dead_letters(svc: Letters, admin: Admin, filters: Filters) -> StreamingResponse:
    """The tenant's dead letters matching the filters as CSV, streamed page by page."""
    return StreamingResponse(
        csv_rows(svc, admin.tenant_id, filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="dead-letters.csv"'},
    )


@router.post(
    "/dlq/bulk",
    status_code=202,
    response_model=BulkJobCreated,
    responses={200: {"model": BulkCount, "description": "a dry run: the selection's count"}},
)
async def bulk_action(body: BulkIn, jobs: Jobs, admin: Admin) -> BulkJobCreated | JSONResponse:
    """Retry or abandon the tenant's *pending* dead letters among ``ids`` and matching
    ``filter``, as a durable job (202; follow it at ``GET /api/jobs/{job_id}``); a dry run
    only counts them (200). Critical-priority jobs are worked first; each dead letter gets
    its audit entry naming the job."""
    filters = body.filters()
    if body.dry_run:
        count = await jobs.count(admin.tenant_id, body.ids, filters)
        return JSONResponse(BulkCount(count=count).model_dump(), status_code=200)
    job_id, count = await jobs.create(
        admin.tenant_id,
        admin.key_id,
        action=body.action,
        priority=body.priority,
        ids=body.ids,
        filters=filters,
    )
    return BulkJobCreated(job_id=job_id, count=count)


@router.get(
    "/jobs/{job_id}",
    response_model=JobView,
    responses=problem_responses({404: ["JOB_NOT_FOUND"]}),
)
async def get_job(job_id: JobId, jobs: Jobs, admin: Admin) -> JobView:
    """A bulk job's status and progress."""
    return JobView.from_row(await jobs.get(admin.tenant_id, job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobView,
    responses=problem_responses({404: ["JOB_NOT_FOUND"], 409: ["JOB_ALREADY_FINISHED"]}),
)
async def cancel_job(job_id: JobId, jobs: Jobs, admin: Admin) -> JobView:
    """Cancel a queued or running bulk job: a running one stops before its next dead letter
    (what it did stays done). Cancelling a cancelled job is a no-op; a finished one is 409."""
    return JobView.from_row(await jobs.cancel(admin.tenant_id, job_id))


@router.get(
    "/dlq/{dead_letter_id:dead_letter_id}", response_model=DeadLetterDetail, responses=NOT_FOUND
)
async def get_dead_letter(
    dead_letter_id: DeadLetterId, svc: Letters, admin: Admin
) -> DeadLetterDetail:
    """A dead letter with its original record, stack and audit trail."""
    letter, audit = await svc.get(admin.tenant_id, dead_letter_id)
    return DeadLetterDetail.of(letter, audit)


ACTION_ERRORS = {404: ["DEAD_LETTER_NOT_FOUND"], 409: ["DEAD_LETTER_NOT_PENDING"]}


@router.post(
    "/dlq/{dead_letter_id}/retry",
    response_model=DeadLetterView,
    responses=problem_responses(
        {
            **ACTION_ERRORS,
            422: ["INVALID_EVENT_DATA", "DEAD_LETTER_DATA_NOT_EDITABLE"],
            503: ["RETRY_UNAVAILABLE"],
        }
    ),
)
async def retry_dead_letter(
    dead_letter_id: DeadLetterId, body: RetryIn, request: Request, svc: Letters, admin: Admin
) -> DeadLetterView:
    """Re-deliver a pending dead letter to the consumer group that failed it (and no other),
    optionally with edited ``data``; a webhook message is replayed through the notifier. The
    dead letter is ``retrying`` until its outcome resolves it or it fails again."""
    letter = await svc.retry(
        admin.tenant_id,
        dead_letter_id,
        admin.key_id,
        priority=body.priority,
        data=body.data,
        authorization=request.headers.get("authorization", ""),
    )
    return DeadLetterView.from_row(letter)


@router.post(
    "/dlq/{dead_letter_id}/abandon",
    response_model=DeadLetterView,
    responses=problem_responses(ACTION_ERRORS),
)
async def abandon_dead_letter(
    dead_letter_id: DeadLetterId, svc: Letters, admin: Admin
) -> DeadLetterView:
    """Give up on a pending dead letter (it stays, ``abandoned``, with its audit trail)."""
    return DeadLetterView.from_row(await svc.abandon(admin.tenant_id, dead_letter_id, admin.key_id))
