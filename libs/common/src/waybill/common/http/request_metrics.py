"""Per-request latency histogram, labelled by route *template* (not raw path) and status.

Raw paths would give one time series per order id; the template (``/orders/{order_id}``)
keeps cardinality bounded. Requests that match no route share one ``<unmatched>`` label.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waybill.common.observability.metrics import HTTP_REQUEST_DURATION

UNMATCHED_ROUTE = "<unmatched>"


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before responding, the client sees a 500
        started = time.perf_counter()

        async def send_capturing_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            HTTP_REQUEST_DURATION.labels(
                service=self.service, method=scope["method"], route=template, status=str(status)
            ).observe(time.perf_counter() - started)
