"""RFC 9457 problem details: the one shape every Waybill error takes on the wire.

Errors are data (STYLE.md #5, #14). Two kinds become ``application/problem+json`` here:

* :class:`ProblemError` -- raised by the HTTP edge itself (auth, pagination, limits), which
  knows its status;
* :class:`~waybill.common.failures.DomainError` -- raised by domain and application code,
  which knows a code and a failure class but no HTTP status: the service's ``ERROR_STATUS``
  table (handed to ``create_app``) gives it, once, at the edge (see ``http.errors``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Send

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://waybill.dev/problems/"

# Generic codes for statuses raised by the framework (404 route, 405 method, ...).
STATUS_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def problem_type(code: str) -> str:
    """The ``type`` URI of a code: ``ORDER_NOT_FOUND`` -> ``.../problems/order-not-found``."""
    return PROBLEM_TYPE_BASE + code.lower().replace("_", "-")


def title_from_code(code: str) -> str:
    return code.replace("_", " ").capitalize()


class ProblemError(Exception):
    """An error the HTTP edge reports as-is: status, stable code, title, optional detail."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        extra: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class Problem:
    """A rendered problem: body plus extra response headers."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        status: int,
        code: str,
        title: str | None = None,
        detail: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        # extra first, so it can never overwrite the standard members.
        self.body: dict[str, Any] = {
            **(extra or {}),
            "type": problem_type(code),
            "title": title or title_from_code(code),
            "status": status,
            "detail": detail,
            "code": code,
        }
        self.headers = dict(headers or {})

    def with_instance(self, instance: str) -> Problem:
        self.body["instance"] = instance
        return self

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), default=str).encode()

    def to_response(self) -> Response:
        return Response(
            self.encode(),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_CONTENT_TYPE,
        )

    async def send(self, send: Send) -> None:
        """Send the problem straight over ASGI (for pure-ASGI middleware)."""
        body = self.encode()
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def problem_from_exception(exc: BaseException) -> Problem | None:
    """The problem an edge error stands for, or None when ``exc`` is not a ``ProblemError``
    (domain errors need the service's table: ``http.errors.domain_problem``)."""
    if isinstance(exc, ProblemError):
        return Problem(exc.status, exc.code, exc.title, exc.detail, exc.extra, exc.headers)
    return None
