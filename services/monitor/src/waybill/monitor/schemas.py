"""Request bodies and query filters of the monitor's API (pydantic, strict: unknown fields 422)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from waybill.common.http.models import StrictModel
from waybill.monitor.domain.lifecycle import Priority


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority = "normal"
    data: dict[str, Any] | None = Field(
        default=None,
        description="edited event data, validated against the event type's schema "
        "(422 INVALID_EVENT_DATA otherwise); consumer dead letters only",
    )


DeadLetterIdText = Annotated[str, StringConstraints(pattern=r"^dlq_[0-9a-f]{32}$")]
FilterName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class BulkFilter(StrictModel):
    """Which dead letters (each field: equal to; absent: any). A bulk job acts on pending dead
    letters only, so there is no ``status``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    failure_type: FilterName | None = None
    service: FilterName | None = None
    consumer_group: FilterName | None = None
    fingerprint: FilterName | None = None


def _selection_schema(schema: dict[str, Any]) -> None:
    """``ids`` or ``filter`` (or both) must be there, and neither may be null."""
    schema["anyOf"] = [{"required": ["ids"]}, {"required": ["filter"]}]
    for name in ("ids", "filter"):
        field = schema["properties"][name]
        field["anyOf"] = [kind for kind in field["anyOf"] if kind.get("type") != "null"]


class BulkIn(StrictModel):
    """Strict: no type coercion (``"dry_run": 0`` is 422, not false)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_selection_schema)

    ids: list[DeadLetterIdText] | None = Field(
        default=None, min_length=1, max_length=1000, description="these dead letters"
    )
    filter: BulkFilter | None = Field(
        default=None, description="the dead letters matching it (with ``ids``: both)"
    )
    action: Literal["retry", "abandon"]
    dry_run: bool = Field(default=False, description="only count the selection")
    priority: Priority = Field(default="normal", description="of each retry; critical jobs first")

    @field_validator("ids", "filter", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave it out rather than null")
        return value

    @model_validator(mode="after")
    def _selects(self) -> BulkIn:
        if self.ids is None and self.filter is None:
            raise ValueError("give ids, a filter, or both")
        return self

    def filters(self) -> dict[str, str | None]:
        return (self.filter or BulkFilter()).model_dump()
