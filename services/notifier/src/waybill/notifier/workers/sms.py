"""The SMS channel: the provider's ``POST /v1/messages`` (the sandbox's by default) over httpx.

Every attempt of one notification sends the same request with ``Idempotency-Key`` = the
notification id, so a retry after a lost answer (or a notifier killed before its commit) is
answered with the first message, not sent twice. 429 is retried no sooner than its
``Retry-After``; 5xx, timeouts and transport errors are retried; any other 4xx is permanent
(the request itself is wrong: retrying cannot help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from waybill.common.observability.integrations import exception_error_class, integration_call
from waybill.notifier.metrics import SERVICE, SMS_PROVIDER
from waybill.notifier.rendering import Renderer
from waybill.notifier.workers.messages import Delivered, Refused

MESSAGES_PATH = "/v1/messages"


@dataclass
class SmsChannel:
    renderer: Renderer
    client: httpx.AsyncClient  # base_url = the provider, its key in the headers

    async def send(self, notification: Any) -> Delivered | Refused:
        body = self.renderer.sms(notification.template, notification.context)
        async with integration_call(SERVICE, SMS_PROVIDER) as call:
            try:
                response = await self.client.post(
                    MESSAGES_PATH,
                    json={"to": notification.recipient, "body": body},
                    headers={"Idempotency-Key": notification.notification_id},
                )
            except httpx.HTTPError as exc:
                call.failed(exception_error_class(exc))
                return Refused(f"SMS {type(exc).__name__}: {exc}", unreachable=True)
            call.answered(response.status_code)
        status = response.status_code
        if status < 300:
            return Delivered()
        reason = f"SMS HTTP {status}: {response.text[:300]}"
        if status == 429:
            return Refused(reason, retry_after_s=_seconds(response.headers.get("retry-after")))
        return Refused(reason, permanent=status < 500 and status != 408, unreachable=status >= 500)


def sms_client(url: str, api_key: str, timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        follow_redirects=False,
    )


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
