"""Exception handling for every service: one mapping from exceptions to problem+json.

* validation errors -> 422 ``VALIDATION_ERROR`` (or ``MALFORMED_JSON``) with an ``errors``
  list that never echoes the input back (it may be huge, deep or sensitive);
* Starlette/FastAPI ``HTTPException`` (404 route, 405 method, ...) -> a generic code;
* :class:`~waybill.common.http.problems.ProblemError` (the edge's own) -> its status and code;
* :class:`~waybill.common.failures.DomainError` -> its code, with the status the service's
  ``ERROR_STATUS`` table gives that code (the one place a service maps codes to statuses); a
  code missing from the table is logged (``http_error_status_unmapped``) and answered with a
  status that follows its failure class (``FALLBACK_STATUS``: not found -> 404, ...;
  configuration and unknown -> 500), so a forgotten entry shows in the logs and the client
  still gets the code;
* a stream another writer changed meanwhile (``eventstore.ConcurrencyError``, after the
  service's own retries) -> 409 ``CONCURRENT_MODIFICATION`` with ``Retry-After``;
* an unreachable database (``http.unavailable``) -> 503 ``DATABASE_UNAVAILABLE`` with
  ``Retry-After``;
* anything else -> 500 ``INTERNAL_ERROR``, logged with its stack.

The last one is handled by :class:`ProblemMiddleware` rather than a Starlette handler
because Starlette routes handlers for ``Exception`` to its outermost middleware, outside our
correlation-id and metrics middleware; catching here keeps the id header and the status label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waybill.common.eventstore.errors import ConcurrencyError
from waybill.common.failures import DomainError, FailureType
from waybill.common.http.methods import with_full_allow
from waybill.common.http.problems import (
    STATUS_CODES,
    Problem,
    ProblemError,
    problem_from_exception,
)
from waybill.common.http.unavailable import unavailable_problem_for

log = structlog.get_logger(__name__)

ErrorStatus = Mapping[str, int]
"""A service's table from domain error code to HTTP status (``ERROR_STATUS`` in its api)."""

FALLBACK_STATUS: Mapping[FailureType, int] = {
    FailureType.PERMANENT_INVALID_INPUT: 422,
    FailureType.PERMANENT_NOT_FOUND: 404,
    FailureType.PERMANENT_AUTHENTICATION: 403,
    FailureType.BUSINESS_LOGIC_VIOLATION: 409,
    FailureType.TRANSIENT_NETWORK: 503,
    FailureType.TRANSIENT_DATABASE: 503,
    FailureType.TRANSIENT_RATE_LIMIT: 503,
    FailureType.EXTERNAL_SERVICE_UNAVAILABLE: 503,
    FailureType.EXTERNAL_API_ERROR: 503,
    FailureType.SYSTEM_CPU_OVERLOAD: 503,
}


def domain_problem(exc: DomainError, error_status: ErrorStatus) -> Problem:
    """The problem ``exc`` stands for, its status from ``error_status``."""
    status = error_status.get(exc.code)
    if status is None:
        status = FALLBACK_STATUS.get(FailureType(exc.failure_type), 500)
        log.warning(
            "http_error_status_unmapped",
            code=exc.code,
            failure_type=str(exc.failure_type),
            status=status,
        )
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(int(exc.retry_after_s))
    return Problem(status, exc.code, exc.title, str(exc) or None, exc.extra, headers)


def _problem_of(exc: BaseException, error_status: ErrorStatus) -> Problem | None:
    if isinstance(exc, DomainError):
        return domain_problem(exc, error_status)
    if isinstance(exc, ConcurrencyError):
        # Another writer won the stream after the service's own retries (``eventstore.retry``):
        # nothing was written; the client may try again at once.
        return Problem(
            409,
            "CONCURRENT_MODIFICATION",
            "Concurrent modification",
            "the resource changed while this request ran; nothing was written, try again",
            None,
            {"Retry-After": "1"},
        )
    return problem_from_exception(exc)


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


def install_problem_handlers(app: FastAPI, error_status: ErrorStatus) -> None:
    """The handlers for validation, framework, edge and domain errors; ``error_status`` is
    the service's code -> status table for its domain errors."""

    async def known_error(request: Request, exc: Exception) -> Response:
        problem = _problem_of(exc, error_status)
        assert problem is not None
        return problem.with_instance(request.url.path).to_response()

    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ProblemError, known_error)
    app.add_exception_handler(DomainError, known_error)


class ProblemMiddleware:
    """Turns exceptions that escaped the handlers into problem+json (domain and edge errors
    keep their code; anything unexpected is a logged 500)."""

    def __init__(self, app: ASGIApp, error_status: ErrorStatus | None = None) -> None:
        self.app = app
        self.error_status: ErrorStatus = error_status or {}

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
            problem = _problem_of(exc, self.error_status) or unavailable_problem_for(exc)
            if problem is None:
                log.exception("http_request_failed", path=scope.get("path"))
                problem = Problem(500, "INTERNAL_ERROR", "Internal error", None)
            if started:  # too late to change the response; the connection will be dropped
                raise
            await problem.with_instance(scope.get("path", "")).send(send)
