"""Read models the notifier's API returns (pydantic, documented in the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from waybill.notifier.domain.messages import mask


def _m(row: Any) -> Any:
    return getattr(row, "_mapping", row)


class EndpointView(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    headers: dict[str, str]
    rate_limit_per_s: int | None
    status: str = Field(description="active | disabled")
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> EndpointView:
        m = _m(row)
        return cls(
            id=m["endpoint_id"],
            url=m["url"],
            event_types=list(m["event_types"]),
            description=m["description"],
            headers=m["headers"],
            rate_limit_per_s=m["rate_limit_per_s"],
            status=m["status"],
            disabled_reason=m["disabled_reason"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


class EndpointWithSecretView(EndpointView):
    secret: str = Field(description="the signing secret (whsec_...); keep it on the receiver")


class AttemptView(BaseModel):
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error_class: str | None
    response_excerpt: str | None


class DeliveryView(BaseModel):
    id: str
    message_id: str = Field(description="the webhook-id of every attempt and replay")
    event_type: str
    status: str = Field(description="pending | succeeded | failed")
    next_attempt_at: datetime | None
    attempts: list[AttemptView]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any, attempts: list[Any]) -> DeliveryView:
        m = _m(row)
        return cls(
            id=m["message_id"],
            message_id=m["message_id"],
            event_type=m["event_type"],
            status=m["status"],
            next_attempt_at=m["next_attempt_at"],
            attempts=[
                AttemptView(
                    at=a.at,
                    status_code=a.status_code,
                    latency_ms=a.latency_ms,
                    error_class=a.error_class,
                    response_excerpt=a.response_excerpt,
                )
                for a in attempts
            ],
            created_at=m["created_at"],
        )


class NotificationView(BaseModel):
    """A customer notification; the recipient is masked (``j***@example.com``,
    ``+*******4567``) and no content is shown (a delivery code never leaves the message)."""

    id: str
    order_id: str
    channel: str = Field(description="email | sms")
    template: str
    recipient: str = Field(description="masked")
    status: str = Field(description="queued | sent | failed")
    priority: str = Field(description="urgent | high | normal | low")
    send_at: datetime
    attempts: int
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> NotificationView:
        m = _m(row)
        return cls(
            id=m["notification_id"],
            order_id=m["order_id"],
            channel=m["channel"],
            template=m["template"],
            recipient=mask(m["channel"], m["recipient"]),
            status=m["status"],
            priority=m["priority"],
            send_at=m["send_at"],
            attempts=m["attempts"],
            sent_at=m["sent_at"],
        )
