"""The UI's login, logout, overview and failure-taxonomy pages (thin: read, render)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from waybill.common.auth.dependencies import key_store_of
from waybill.common.backoff import DEFAULT_RETRY
from waybill.common.failures import FailureType
from waybill.common.failures.taxonomy import TAXONOMY
from waybill.monitor import repository
from waybill.monitor.domain.lifecycle import STATUSES
from waybill.monitor.ui.rendering import health_figures, overview_figures, page
from waybill.monitor.ui.sessions import (
    AdminPost,
    AdminSession,
    CheckedForm,
    LoginRequired,
    Session,
    current_admin,
    sessions_of,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    """The overview for a logged-in admin, the login page for anyone else."""
    try:
        admin = await current_admin(request)
    except LoginRequired:
        session = sessions_of(request).read(request) or Session.anonymous()
        return page(request, "login.html", session=Session(csrf=session.csrf))
    figures = await overview_figures(request, admin.principal.tenant_id)
    return page(
        request,
        "overview.html",
        session=admin.session,
        admin=admin,
        figures=figures,
        health=await health_figures(request),
        nav="overview",
    )


@router.post("/login")
async def login(request: Request, form: CheckedForm) -> Response:
    session = sessions_of(request).read(request) or Session.anonymous()
    key = form.get("api_key")
    principal = (
        await key_store_of(request).authenticate(key.strip()) if isinstance(key, str) else None
    )
    if principal is None:
        error, status = "This API key is unknown or revoked.", 401
    elif principal.role != "admin":
        error, status = f"A {principal.role} key cannot open the monitor: use an admin key.", 403
    else:
        response = RedirectResponse("/", status_code=303)
        # A fresh CSRF token at login: a token seen before it is worth nothing after.
        sessions_of(request).write(request, response, Session.of(principal))
        return response
    return page(request, "login.html", session=session, error=error, status_code=status)


@router.post("/logout")
async def logout(request: Request, admin: AdminPost) -> Response:
    response = RedirectResponse("/", status_code=303)
    sessions_of(request).clear(request, response)
    return response


@router.get("/ui/taxonomy")
async def taxonomy(request: Request, admin: AdminSession) -> Response:
    """Dead letters by failure type, beside what the taxonomy says about each type."""
    figures = await overview_figures(request, admin.principal.tenant_id)
    counts = figures.dead_letters.by_failure_type
    rows = [
        {
            "type": kind.value,
            "count": counts.get(kind.value, 0),
            "retried": TAXONOMY[kind].retried,
            "remediation": TAXONOMY[kind].remediation.value,
        }
        for kind in FailureType
    ]
    return page(
        request,
        "taxonomy.html",
        session=admin.session,
        admin=admin,
        rows=rows,
        counts=counts,
        total=sum(counts.values()),
        nav="taxonomy",
    )


@router.get("/ui/retry-policy")
async def retry_policy(request: Request, admin: AdminSession) -> Response:
    """The consumers' retry policy, and what became of the dead letters of each failure type
    (the counts ``/api/overview`` sums by status and by type, here by both)."""
    async with request.app.state.engine.connect() as conn:
        counted = await repository.dead_letter_counts(conn, admin.principal.tenant_id)
    outcomes: dict[str, dict[str, int]] = {}
    for row in counted:
        by_status = outcomes.setdefault(row.failure_type, dict.fromkeys(STATUSES, 0))
        by_status[row.status] = int(row._mapping["count"])
    backoff = DEFAULT_RETRY.backoff
    return page(
        request,
        "retry_policy.html",
        session=admin.session,
        admin=admin,
        policy=DEFAULT_RETRY,
        ceilings=[backoff.ceiling(n) for n in range(1, DEFAULT_RETRY.attempts)],
        retried={kind.value: TAXONOMY[kind].retried for kind in FailureType},
        outcomes=dict(sorted(outcomes.items())),
        statuses=STATUSES,
        nav="retry_policy",
    )
