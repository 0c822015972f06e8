"""Provider API errors, Stripe-shaped: ``{"error": {"type", "code", "message", ...}}``.

The provider API deliberately does not answer problem+json like Waybill's own services: it
stands in for a third party whose error format payments has to adapt to.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class ProviderError(Exception):
    """An error answer of the provider API (status, Stripe ``type`` and ``code``)."""

    def __init__(self, status: int, type_: str, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> str:
        error = {"type": self.type, "code": self.code, "message": self.message, **self.extra}
        return json.dumps({"error": error})

    def to_response(self, headers: dict[str, str] | None = None) -> Response:
        return json_response(self.status, self.body(), headers)


def json_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def invalid_request(code: str, message: str, status: int = 400) -> ProviderError:
    return ProviderError(status, "invalid_request_error", code, message)
