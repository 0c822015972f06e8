"""Exception handling for every service: one mapping from exceptions to problem+json.

* validation errors -> 422 ``VALIDATION_ERROR`` (or ``MALFORMED_JSON``) with an ``errors``
  list that never echoes the input back (it may be huge, deep or sensitive);
* Starlette/FastAPI ``HTTPException`` (404 route, 405 method, ...) -> a generic code;
* :class:`~waybill.common.http.problems.ProblemError`, ``DomainError`` and any exception
  carrying ``code``/``status`` -> their own status and code;
* an unreachable database (``http.unavailable``) -> 503 ``DATABASE_UNAVAILABLE`` with
  ``Retry-After``;
* anything else -> 500 ``INTERNAL_ERROR``, logged with its stack.

The last two are handled by :class:`ProblemMiddleware` rather than a Starlette handler
because Starlette routes handlers for ``Exception`` to its outermost middleware, outside our
correlation-id and metrics middleware; catching here keeps the id header and the status label.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waybill.common.http.methods import with_full_allow
from waybill.common.http.problems import (
    STATUS_CODES,
    DomainError,
    Problem,
    ProblemError,
    problem_from_exception,
)
from waybill.common.http.unavailable import unavailable_problem_for

log = structlog.get_logger(__name__)


def _error_entry(error: Any) -> dict[str, Any]:
    loc = error.get("loc", ())
    return {
        "loc": [part if isinstance(part, int | str) else str(part) for part in loc],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "")),
    }


async def _validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_error_entry(e) for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        problem = Problem(422, "MALFORMED_JSON", "Malformed JSON", "The body is not valid JSON.")
    else:
        problem = Problem(
            422,
            "VALIDATION_ERROR",
            "Validation error",
            "The request does not match the expected schema.",
            {"errors": errors},
        )
    return problem.with_instance(request.url.path).to_response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = with_full_allow(request, exc.headers) if exc.status_code == 405 else exc.headers
    problem = Problem(exc.status_code, code, None, detail, headers=headers)
    return problem.with_instance(request.url.path).to_response()


async def _known_error(request: Request, exc: Exception) -> Response:
    problem = problem_from_exception(exc)
    assert problem is not None
    return problem.with_instance(request.url.path).to_response()


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ProblemError, _known_error)
    app.add_exception_handler(DomainError, _known_error)


class ProblemMiddleware:
    """Turns exceptions that escaped the handlers into problem+json (duck-typed domain errors
    keep their status; anything unexpected is a logged 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            problem = problem_from_exception(exc) or unavailable_problem_for(exc)
            if problem is None:
                log.exception("http_request_failed", path=scope.get("path"))
                problem = Problem(500, "INTERNAL_ERROR", "Internal error", None)
            if started:  # too late to change the response; the connection will be dropped
                raise
            await problem.with_instance(scope.get("path", "")).send(send)
