"""The dead-letter page's bulk actions, CSV export and job progress, on the same use cases as
``POST /api/dlq/bulk``, ``GET /api/jobs/{id}`` (and cancel) and ``GET /api/dlq/export.csv``.

A bulk action is two steps, as an operator expects of something that touches many records: the
form asks for a dry run first (how many pending dead letters the filter selects), the
confirmation page creates the durable job, and the job's page shows its progress (refreshed
from ``/ui/jobs/{id}.json`` by ``monitor.js``) with a Cancel button while it runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from waybill.monitor.api import Jobs, Letters
from waybill.monitor.domain.errors import MonitorError
from waybill.monitor.export import csv_rows
from waybill.monitor.ui.dead_letter_pages import FILTERS, PAGE, Filters, refused
from waybill.monitor.ui.rendering import page
from waybill.monitor.ui.sessions import AdminPost, AdminSession
from waybill.monitor.views import JobView

router = APIRouter(include_in_schema=False)
JOBS = "/ui/jobs"
JobId = Annotated[str, Path(pattern=r"^job_[0-9a-f]{32}$")]
ACTIONS = ("retry", "abandon")
PRIORITIES = ("normal", "high", "critical")


@router.get(PAGE + "/export.csv")
async def export(svc: Letters, admin: AdminSession, filters: Filters) -> StreamingResponse:
    """The filtered dead letters as CSV, streamed (the API's export, for the session)."""
    return StreamingResponse(
        csv_rows(svc, admin.principal.tenant_id, filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="dead-letters.csv"'},
    )


def _chosen(form: Any) -> tuple[str, str, dict[str, str | None]]:
    action = str(form.get("action", ""))
    priority = str(form.get("priority", "normal"))
    filters = {name: (str(form.get(name, "")).strip() or None) for name in FILTERS}
    return action, priority, filters


@router.post(PAGE + "/bulk")
async def bulk(request: Request, admin: AdminPost, jobs: Jobs) -> Response:
    """Without ``confirm``: the dry run's count and a confirmation form. With it: the job."""
    form = await request.form()
    action, priority, filters = _chosen(form)
    if action not in ACTIONS or priority not in PRIORITIES:
        return page(
            request,
            "refused.html",
            session=admin.session,
            admin=admin,
            code="INVALID_BULK_ACTION",
            detail="choose retry or abandon, at normal, high or critical priority",
            status_code=422,
            nav="dead_letters",
        )
    tenant = admin.principal.tenant_id
    if form.get("confirm") != "yes":
        count = await jobs.count(tenant, None, filters)
        return page(
            request,
            "bulk_confirm.html",
            session=admin.session,
            admin=admin,
            action=action,
            priority=priority,
            filters=filters,
            count=count,
            nav="dead_letters",
        )
    job_id, _ = await jobs.create(
        tenant, admin.principal.key_id, action=action, priority=priority, ids=None, filters=filters
    )
    return RedirectResponse(f"{JOBS}/{job_id}", status_code=303)


# The progress route first: ``{job_id}`` alone would also match ``job_....json``.
@router.get(JOBS + "/{job_id}.json")
async def job_progress(job_id: JobId, admin: AdminSession, jobs: Jobs) -> JSONResponse:
    """The job's progress for the page's script (``GET /api/jobs/{id}`` for the session)."""
    try:
        job = JobView.from_row(await jobs.get(admin.principal.tenant_id, job_id))
    except MonitorError as exc:
        return JSONResponse({"code": exc.code, "detail": str(exc)}, status_code=404)
    return JSONResponse(job.model_dump(mode="json"))


@router.get(JOBS + "/{job_id}")
async def job_page(request: Request, job_id: JobId, admin: AdminSession, jobs: Jobs) -> Response:
    try:
        job = JobView.from_row(await jobs.get(admin.principal.tenant_id, job_id))
    except MonitorError as exc:
        return await refused(request, admin, exc)
    return page(
        request, "job.html", session=admin.session, admin=admin, job=job, nav="dead_letters"
    )


@router.post(JOBS + "/{job_id}/cancel")
async def cancel(request: Request, job_id: JobId, admin: AdminPost, jobs: Jobs) -> Response:
    try:
        await jobs.cancel(admin.principal.tenant_id, job_id)
    except MonitorError as exc:
        return await refused(request, admin, exc)
    return RedirectResponse(f"{JOBS}/{job_id}", status_code=303)
