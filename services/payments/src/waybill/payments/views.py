"""Read models the API returns (pydantic, documented in the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class PaymentView(BaseModel):
    id: str
    order_id: str
    status: str
    amount_cents: int
    currency: str
    payment_method: str
    provider: str
    provider_payment_id: str | None
    failure_code: str | None
    failure_reason: str | None
    refunded_cents: int
    order_closed: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> PaymentView:
        return cls(
            id=row.id,
            order_id=row.order_id,
            status=row.status,
            amount_cents=row.amount_cents,
            currency=row.currency,
            payment_method=row.payment_method,
            provider=row.provider,
            provider_payment_id=row.provider_payment_id,
            failure_code=row.failure_code,
            failure_reason=row.failure_reason,
            refunded_cents=row.refunded_cents,
            order_closed=row.order_closed,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class SyncResult(BaseModel):
    processed: int  # payments examined
    succeeded: int  # settled as captured
    failed: int  # settled as failed
