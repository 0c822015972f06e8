"""Request bodies of the payments API: strict (no type coercion) and closed (unknown fields 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from waybill.common.http.models import JSON_INTEGER, StrictModel


class RefundIn(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount_cents: Annotated[int, Field(gt=0, le=100_000_000_000), JSON_INTEGER] | None = Field(
        default=None, description="Cents to refund; default: everything not yet refunded."
    )
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None
