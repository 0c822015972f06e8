"""Request bodies of the shipping API: strict (no type coercion) and closed (unknown fields 422)."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from waybill.common.contracts.shipping import FAILURE_REASONS
from waybill.common.http.models import JSON_INTEGER
from waybill.common.http.models import StrictModel as ClosedModel
from waybill.shipping.domain.agents import Shift

POSTAL_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 -]{0,15}$"
HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
PostalCode = Annotated[str, Field(pattern=POSTAL_CODE_PATTERN, max_length=16)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Notes = Annotated[str, Field(max_length=1000)]
Capacity = Annotated[int, Field(ge=1, le=1000), JSON_INTEGER]
FailureReason = Literal[FAILURE_REASONS]  # type: ignore[valid-type]


class StrictModel(ClosedModel):
    """Closed (unknown fields 422) and strict: ``false`` is not a weekday, ``"3"`` not a
    capacity (JSON integers written as ``3.0`` still are, ``JSON_INTEGER``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ShiftIn(StrictModel):
    weekday: Annotated[int, Field(ge=0, le=6, description="0 = Monday"), JSON_INTEGER]
    start: Annotated[str, Field(pattern=HH_MM, description="HH:MM, UTC")]
    end: Annotated[
        str, Field(pattern=HH_MM, description="HH:MM, UTC; before start: runs past midnight")
    ]

    def to_shift(self) -> Shift:
        return Shift(self.weekday, time.fromisoformat(self.start), time.fromisoformat(self.end))


ZipCodes = Annotated[list[PostalCode], Field(min_length=1, max_length=500)]
Shifts = Annotated[list[ShiftIn], Field(max_length=50)]


class AgentIn(StrictModel):
    name: Name
    service_zip_codes: ZipCodes
    capacity: Capacity = 10
    shifts: Shifts = Field(default_factory=list, description="none: always on shift")


class AgentPatch(StrictModel):
    active: bool | None = None
    service_zip_codes: ZipCodes | None = None
    capacity: Capacity | None = None
    shifts: Shifts | None = None


class DeclineIn(StrictModel):
    reason: Annotated[str, Field(max_length=500)] | None = None


class ActionIn(StrictModel):
    notes: Notes | None = None


class DeliverIn(ActionIn):
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$", description="the customer's code")] | None = (
        None
    )


class MarkFailedIn(ActionIn):
    reason: FailureReason


class SettingsIn(StrictModel):
    """The settings to change; a field left out keeps its value, ``null`` resets an offer
    setting to the service's default."""

    require_delivery_code: bool | None = None
    offer_wave_size: (
        Annotated[int, Field(ge=0, le=1000, description="agents per wave; 0 = all"), JSON_INTEGER]
        | None
    ) = None
    offer_ttl_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    sla_hours: (
        Annotated[float, Field(gt=0, le=24 * 365, description="a new shipment is due after")] | None
    ) = None
