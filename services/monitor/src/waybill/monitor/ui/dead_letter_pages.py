"""The UI's dead-letter page (filters, table, groups) and its retry/abandon buttons, on the
same use cases as ``/api/dlq`` and ``/api/dlq/{id}/retry|abandon``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.monitor.api import ERROR_STATUS, Letters, Paging
from waybill.monitor.domain.errors import MonitorError
from waybill.monitor.domain.lifecycle import STATUSES
from waybill.monitor.taxonomy import FAILURE_TYPES
from waybill.monitor.ui.rendering import page
from waybill.monitor.ui.sessions import Admin, AdminPost, AdminSession
from waybill.monitor.views import DeadLetterView, GroupView

router = APIRouter(include_in_schema=False)
PAGE = "/ui/dead-letters"
FILTERS = ("status", "failure_type", "service", "consumer_group", "fingerprint")
DeadLetterId = Annotated[str, Path(pattern=r"^dlq_[0-9a-f]{32}$")]
Text = Annotated[str, Query(max_length=200)]


async def form_filters(
    status: Text = "",
    failure_type: Text = "",
    service: Text = "",
    consumer_group: Text = "",
    fingerprint: Text = "",
) -> dict[str, str | None]:
    """The API's filters from a GET form, whose empty fields mean "any"."""
    given = {
        "status": status if status in STATUSES else "",
        "failure_type": failure_type,
        "service": service,
        "consumer_group": consumer_group,
        "fingerprint": fingerprint,
    }
    return {name: value.strip() or None for name, value in given.items()}


Filters = Annotated[dict[str, str | None], Depends(form_filters)]


@router.get(PAGE)
async def dead_letters_page(
    request: Request, admin: AdminSession, svc: Letters, filters: Filters, paging: Paging
) -> Response:
    tenant = admin.principal.tenant_id
    rows, last = await svc.page(
        tenant, filters, limit=paging.limit, after=position_from_cursor(paging.after)
    )
    groups, _ = await svc.groups(tenant, filters, limit=20, after=None)
    query = {name: value for name, value in filters.items() if value}
    cursor = next_cursor(last)
    return page(
        request,
        "dead_letters.html",
        session=admin.session,
        admin=admin,
        letters=[DeadLetterView.from_row(row) for row in rows],
        groups=[GroupView.from_row(row) for row in groups],
        filters=filters,
        statuses=STATUSES,
        failure_types=FAILURE_TYPES,
        here=f"{PAGE}?{urlencode(query)}" if query else PAGE,
        next_page=f"{PAGE}?{urlencode({**query, 'cursor': cursor})}" if cursor else None,
        nav="dead_letters",
    )


@router.post(PAGE + "/{dead_letter_id}/retry")
async def retry(
    request: Request, dead_letter_id: DeadLetterId, admin: AdminPost, svc: Letters
) -> Response:
    """Retry as ``POST /api/dlq/{id}/retry`` with no edit, at normal priority."""
    try:
        await svc.retry(
            admin.principal.tenant_id,
            dead_letter_id,
            admin.principal.key_id,
            priority="normal",
            data=None,
            # The session holds no key to hand on: a webhook message's replay (the notifier
            # checks the caller's key) stays with the API (the page offers no button for it).
            authorization="",
        )
    except MonitorError as exc:
        return await _refused(request, admin, exc)
    return await _back(request)


@router.post(PAGE + "/{dead_letter_id}/abandon")
async def abandon(
    request: Request, dead_letter_id: DeadLetterId, admin: AdminPost, svc: Letters
) -> Response:
    try:
        await svc.abandon(admin.principal.tenant_id, dead_letter_id, admin.principal.key_id)
    except MonitorError as exc:
        return await _refused(request, admin, exc)
    return await _back(request)


async def _back(request: Request) -> Response:
    """Back to the list the button was on (only ever a dead-letter page of this site)."""
    target = (await request.form()).get("next")
    if not isinstance(target, str) or not target.startswith(PAGE) or "//" in target:
        target = PAGE
    return RedirectResponse(target, status_code=303)


async def _refused(request: Request, admin: Admin, exc: MonitorError) -> Response:
    return page(
        request,
        "refused.html",
        session=admin.session,
        admin=admin,
        code=exc.code,
        detail=str(exc),
        status_code=ERROR_STATUS.get(exc.code, 409),
        nav="dead_letters",
    )
