"""The UI's templates (jinja2, autoescaped) and the figures its pages read.

The figures come from the same functions as the JSON API (``overview.overview`` validated by
the API's ``Overview`` model, ``health.service_health``), so a page and ``/api/overview``
cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from waybill.monitor import health
from waybill.monitor.settings import MonitorSettings
from waybill.monitor.ui.sessions import CSRF_FIELD, Admin, Session, sessions_of
from waybill.monitor.views import HealthView, Overview

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
# No inline script runs: the pages' code is a static file; the chart data is a JSON block.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def cents(value: int) -> str:
    return f"{value / 100:,.2f}"


def percent(value: float | None) -> str:
    return "no deliveries" if value is None else f"{value * 100:.1f} %"


TEMPLATES.env.filters["cents"] = cents
TEMPLATES.env.filters["percent"] = percent


def page(
    request: Request,
    template: str,
    *,
    session: Session,
    admin: Admin | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page of the UI; the session cookie is (re)written with it."""
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "csrf_field": CSRF_FIELD,
            "csrf_token": session.csrf,
            "admin": admin.principal if admin else None,
            **context,
        },
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
    sessions_of(request).write(request, response, session)
    return response


async def overview_figures(request: Request, tenant_id: str) -> Overview:
    from waybill.monitor.api import full_overview  # the API's own figures (no second copy)

    return await full_overview(request, tenant_id)


async def health_figures(request: Request) -> HealthView:
    settings: MonitorSettings = request.app.state.settings
    answer = await health.service_health(
        request.app.state.health_client,
        settings.service_urls(),
        settings.monitor_health_timeout_s,
        request.app.state.own_checks,
    )
    return HealthView.model_validate(answer)
