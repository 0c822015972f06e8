"""The UI's fleet-wide operational pages, read from every service's ``/metrics`` through
``/api/overview``'s own figures (the session holds no key for the services' admin routes):
duplicates skipped per consumer group (``/ui/idempotency``) and third-party calls
(``/ui/integrations``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from waybill.monitor.ui.rendering import overview_figures, page
from waybill.monitor.ui.sessions import AdminSession
from waybill.monitor.views import Overview

router = APIRouter(include_in_schema=False)


@router.get("/ui/idempotency")
async def idempotency(request: Request, admin: AdminSession) -> Response:
    """Per consumer group: records applied, duplicates the inbox skipped, their rate, and the
    time of the duplicate check."""
    figures = await overview_figures(request, admin.principal.tenant_id)
    groups = figures.idempotency
    chart = {f"{g.service}/{g.consumer_group}": round(g.duplicate_rate * 100, 2) for g in groups}
    return page(
        request,
        "idempotency.html",
        session=admin.session,
        admin=admin,
        groups=groups,
        unanswered=_unanswered(figures),
        chart={"duplicate_rate_percent": chart},
        nav="idempotency",
    )


@router.get("/ui/integrations")
async def integrations(request: Request, admin: AdminSession) -> Response:
    """Per service and third party: calls, errors, error rate, latency, the last error."""
    figures = await overview_figures(request, admin.principal.tenant_id)
    calls = figures.integrations
    # A list, not a mapping: the template's JSON sorts keys, and the series keep this order.
    chart = {
        "calls": [
            {
                "label": "ok",
                "values": {f"{c.service}/{c.integration}": c.calls - c.errors for c in calls},
            },
            {
                "label": "errors",
                "values": {f"{c.service}/{c.integration}": c.errors for c in calls},
            },
        ]
    }
    return page(
        request,
        "integrations.html",
        session=admin.session,
        admin=admin,
        calls=calls,
        unanswered=_unanswered(figures),
        chart=chart,
        nav="integrations",
    )


def _unanswered(figures: Overview) -> list[dict[str, Any]]:
    """The services whose ``/metrics`` did not answer (their rows are missing, not zero)."""
    return [
        {"service": name, "error": found.error}
        for name, found in sorted(figures.outbox_backlog.items())
        if found.status != "ok"
    ]
