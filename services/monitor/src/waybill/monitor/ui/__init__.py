"""The monitor's admin UI (CONTRACT.md § monitor, ``GET /``): server-rendered pages over the
same read models and use cases as the JSON API, a signed session cookie, CSRF-checked forms,
server-sent live figures and a vendored chart library (``static/vendor/README.md``)."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from waybill.monitor.settings import MonitorSettings
from waybill.monitor.ui import (
    bulk_pages,
    capacity_page,
    dead_letter_pages,
    operations_pages,
    pages,
    stream,
)
from waybill.monitor.ui.sessions import CsrfRejected, LoginRequired, Sessions

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI, settings: MonitorSettings) -> None:
    """Mount the UI on the monitor's app."""
    secret = settings.monitor_session_secret
    app.state.ui_sessions = Sessions(
        secret.get_secret_value() if secret else secrets.token_urlsafe(32)
    )
    for module in (pages, capacity_page, bulk_pages, dead_letter_pages, operations_pages, stream):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)


async def _to_login(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/", status_code=303)


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    return HTMLResponse(
        "<!doctype html><title>Refused</title><p>This form was stale or not ours (no valid CSRF"
        ' token). <a href="/">Back to the monitor</a>.</p>',
        status_code=403,
    )
