"""HTTP routes of the monitor's admin API (CONTRACT.md § monitor). Thin: parse, authorise, call,
map. Every route is a tenant's admins' own: another tenant's dead letter is 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from waybill.common.auth import Principal, require_role
from waybill.common.http.errors import ErrorStatus
from waybill.common.http.openapi import problem_responses
from waybill.common.http.pagination import Page, PageParams, page_params
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.monitor import health, overview
from waybill.monitor.dead_letters import DeadLetters
from waybill.monitor.domain import errors
from waybill.monitor.domain.lifecycle import Status
from waybill.monitor.schemas import RetryIn
from waybill.monitor.settings import MonitorSettings
from waybill.monitor.views import (
    DeadLetterDetail,
    DeadLetterView,
    Feed,
    GroupView,
    HealthView,
    Overview,
)

router = APIRouter(prefix="/api", tags=["monitor"])
Admin = Annotated[Principal, Depends(require_role("admin"))]
DeadLetterId = Annotated[str, Path(pattern=r"^dlq_[0-9a-f]{32}$")]
NOT_FOUND = problem_responses({404: ["DEAD_LETTER_NOT_FOUND"]})

# The one place the monitor's error codes meet HTTP (STYLE.md #14), handed to create_app.
ERROR_STATUS: ErrorStatus = {
    errors.MonitorError.code: 409,
    errors.DeadLetterNotFound.code: 404,
    errors.DeadLetterNotPending.code: 409,
    errors.InvalidEventData.code: 422,
    errors.DataNotEditable.code: 422,
    errors.RetryUnavailable.code: 503,
}


async def dead_letters(request: Request) -> DeadLetters:
    return request.app.state.dead_letters  # type: ignore[no-any-return]


Letters = Annotated[DeadLetters, Depends(dead_letters)]
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
    dead letters, by status."""
    return Overview.model_validate(
        await overview.overview(request.app.state.engine, admin.tenant_id)
    )


@router.get("/events", response_model=Feed)
async def recent_events(request: Request, admin: Admin) -> Feed:
    """The tenant's last 100 events the monitor consumed, newest first."""
    items = await overview.recent(request.app.state.engine, admin.tenant_id)
    return Feed.model_validate({"items": [{**i, "event_id": str(i["event_id"])} for i in items]})


@router.get("/health", response_model=HealthView)
async def get_health(request: Request, admin: Admin) -> HealthView:
    """Every service's readiness, polled now: ``healthy`` when all are ready, ``unhealthy`` when
    orders, the broker or a database is down, else ``degraded``."""
    settings: MonitorSettings = request.app.state.settings
    answer = await health.service_health(
        request.app.state.health_client,
        settings.service_urls(),
        settings.monitor_health_timeout_s,
        request.app.state.own_checks,
    )
    return HealthView.model_validate(answer)


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


@router.get("/dlq/{dead_letter_id}", response_model=DeadLetterDetail, responses=NOT_FOUND)
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
