"""Request bodies and query filters of the monitor's API (pydantic, strict: unknown fields 422)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from waybill.monitor.domain.lifecycle import Priority


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority = "normal"
    data: dict[str, Any] | None = Field(
        default=None,
        description="edited event data, validated against the event type's schema "
        "(422 INVALID_EVENT_DATA otherwise); consumer dead letters only",
    )
