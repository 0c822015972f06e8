"""The UI's dead-letter page (filters, table, groups) and its retry/abandon buttons, on the
same use cases as ``/api/dlq`` and ``/api/dlq/{id}/retry|abandon``."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from waybill.common.auth.dependencies import key_store_of
from waybill.common.keyset import next_cursor, position_from_cursor
from waybill.monitor.api import ERROR_STATUS, Letters, Paging
from waybill.monitor.domain.errors import MonitorError
from waybill.monitor.domain.lifecycle import STATUSES
from waybill.monitor.taxonomy import FAILURE_TYPES
from waybill.monitor.ui.rendering import page
from waybill.monitor.ui.sessions import Admin, AdminPost, AdminSession
from waybill.monitor.views import DeadLetterDetail, DeadLetterView, GroupView

router = APIRouter(include_in_schema=False)
PAGE = "/ui/dead-letters"
PRIORITIES = ("normal", "high", "critical")
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


@router.get(PAGE + "/{dead_letter_id}")
async def dead_letter_page(
    request: Request, dead_letter_id: DeadLetterId, admin: AdminSession, svc: Letters
) -> Response:
    """One dead letter: its record, error and stack, audit trail, and an edit-and-retry form."""
    try:
        row, audit = await svc.get(admin.principal.tenant_id, dead_letter_id)
    except MonitorError as exc:
        return await refused(request, admin, exc)
    letter = DeadLetterDetail.of(row, audit)
    value = letter.record.value
    return page(
        request,
        "dead_letter.html",
        session=admin.session,
        admin=admin,
        letter=letter,
        editable=json.dumps(value, indent=2) if isinstance(value, dict) else None,
        here=f"{PAGE}/{dead_letter_id}",
        nav="dead_letters",
    )


@router.post(PAGE + "/{dead_letter_id}/retry")
async def retry(
    request: Request, dead_letter_id: DeadLetterId, admin: AdminPost, svc: Letters
) -> Response:
    """Retry as ``POST /api/dlq/{id}/retry``: from the list with no edit at normal priority,
    from a dead letter's page with its priority and edited data (a JSON object). A webhook
    message's replay (the notifier checks the caller's key) takes the admin's key once more in
    the form: the session never holds one (ADR 0017), and it is handed on, never kept."""
    form = await request.form()
    priority = form.get("priority", "normal")
    if priority not in PRIORITIES:
        priority = "normal"
    data: dict[str, Any] | None = None
    edited = form.get("data")
    if isinstance(edited, str) and edited.strip():
        try:
            data = json.loads(edited)
        except ValueError as exc:
            data = None
            problem = f"the edited data are not JSON: {exc}"
        else:
            problem = "" if isinstance(data, dict) else "the edited data must be a JSON object"
        if problem:
            return page(
                request,
                "refused.html",
                session=admin.session,
                admin=admin,
                code="INVALID_EVENT_DATA",
                detail=problem,
                status_code=422,
                nav="dead_letters",
            )
    authorization = ""
    key = form.get("api_key")
    if isinstance(key, str) and key.strip():
        principal = await key_store_of(request).authenticate(key.strip())
        if (
            principal is None
            or principal.role != "admin"
            or (principal.tenant_id != admin.principal.tenant_id)
        ):
            return page(
                request,
                "refused.html",
                session=admin.session,
                admin=admin,
                code="REPLAY_KEY_REJECTED",
                detail="the replay needs an admin key of this tenant",
                status_code=403,
                nav="dead_letters",
            )
        authorization = f"Bearer {key.strip()}"
    try:
        await svc.retry(
            admin.principal.tenant_id,
            dead_letter_id,
            admin.principal.key_id,
            priority=str(priority),
            data=data,
            authorization=authorization or None,
        )
    except MonitorError as exc:
        return await refused(request, admin, exc)
    return await _back(request)


@router.post(PAGE + "/{dead_letter_id}/abandon")
async def abandon(
    request: Request, dead_letter_id: DeadLetterId, admin: AdminPost, svc: Letters
) -> Response:
    try:
        await svc.abandon(admin.principal.tenant_id, dead_letter_id, admin.principal.key_id)
    except MonitorError as exc:
        return await refused(request, admin, exc)
    return await _back(request)


async def _back(request: Request) -> Response:
    """Back to the list the button was on (only ever a dead-letter page of this site)."""
    target = (await request.form()).get("next")
    if not isinstance(target, str) or not target.startswith(PAGE) or "//" in target:
        target = PAGE
    return RedirectResponse(target, status_code=303)


async def refused(request: Request, admin: Admin, exc: MonitorError) -> Response:
    return page(
        request,
        "refused.html",
        session=admin.session,
        admin=admin,
        code=exc.code,
        detail=str(exc),
        errors=exc.extra.get("errors", []),  # where edited data broke the schema
        status_code=ERROR_STATUS.get(exc.code, 409),
        nav="dead_letters",
    )
