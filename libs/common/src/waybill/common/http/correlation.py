"""Correlation ids: accepted from ``X-Correlation-Id`` or generated, echoed on the response,
and bound to the structlog context so every log line of the request carries it.

The id also reaches handlers (``current_correlation_id()`` / ``request.state.correlation_id``)
so they can stamp it on the events they emit, which is how one id follows a whole saga.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = "x-correlation-id"
# Client-supplied ids end up in logs and event headers: accept only short, plain tokens.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

_correlation_id: ContextVar[str | None] = ContextVar("waybill_correlation_id", default=None)


def current_correlation_id() -> str | None:
    """The correlation id of the request being handled, if any."""
    return _correlation_id.get()


def new_correlation_id() -> str:
    return str(uuid.uuid4())


class CorrelationIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(CORRELATION_HEADER.encode(), b"").decode("latin-1")
        correlation_id = supplied if _VALID_ID.match(supplied) else new_correlation_id()
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        header = (CORRELATION_HEADER.encode(), correlation_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = _correlation_id.set(correlation_id)
        try:
            # bound_contextvars restores the previous values on exit, so nothing leaks into the
            # caller's context (matters when the app runs in the caller's task, as in tests).
            with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
                await self.app(scope, receive, send_with_id)
        finally:
            _correlation_id.reset(token)
