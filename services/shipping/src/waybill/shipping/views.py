"""Read models the API returns (pydantic, documented in the OpenAPI). None of them carries the
delivery code or its hash: the code reaches the customer through the notifier only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


def _m(row: Any) -> Any:
    return getattr(row, "_mapping", row)


class ShipmentView(BaseModel):
    id: str
    order_id: str
    status: str
    version: int
    postal_code: str | None
    agent_id: str | None
    attempts: int = Field(description="delivery attempts: 1 after ship, +1 per retry_delivery")
    failure_reason: str | None
    sla_due_at: datetime
    sla_breached: bool
    delivery_code_locked: bool
    created_at: datetime
    delivered_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any, *, max_wrong_codes: int) -> ShipmentView:
        m = _m(row)
        return cls(
            id=m["shipment_id"],
            order_id=m["order_id"],
            status=m["status"],
            version=m["version"],
            postal_code=m["postal_code"],
            agent_id=m["agent_id"],
            attempts=m["attempts"],
            failure_reason=m["failure_reason"],
            sla_due_at=m["sla_due_at"],
            sla_breached=m["sla_breached"],
            delivery_code_locked=m["wrong_codes"] >= max_wrong_codes,
            created_at=m["created_at"],
            delivered_at=m["delivered_at"],
            updated_at=m["updated_at"],
        )


class ShiftView(BaseModel):
    weekday: int
    start: str
    end: str


class AgentView(BaseModel):
    id: str
    name: str
    service_zip_codes: list[str]
    capacity: int
    shifts: list[ShiftView]
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AgentView:
        m = _m(row)
        return cls(
            id=m["agent_id"],
            name=m["name"],
            service_zip_codes=list(m["service_zip_codes"]),
            capacity=m["capacity"],
            shifts=m["shifts"],
            active=m["active"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


class CreatedAgentView(AgentView):
    api_key: str = Field(description="the agent's API key (role agent); shown this once only")


class AssignmentView(BaseModel):
    id: str
    shipment_id: str
    postal_code: str | None
    wave: int
    status: str
    expires_at: datetime
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AssignmentView:
        m = _m(row)
        return cls(
            id=m["assignment_id"],
            shipment_id=m["shipment_id"],
            postal_code=m["postal_code"],
            wave=m["wave"],
            status=m["status"],
            expires_at=m["expires_at"],
            created_at=m["created_at"],
        )


class PostalCodeLoad(BaseModel):
    postal_code: str
    agents: int
    active_shipments: int
    capacity: int
    utilisation: float
    hotspot: bool


class AgentLoad(BaseModel):
    id: str
    name: str
    active_shipments: int
    capacity: int
    utilisation: float


class CapacityView(BaseModel):
    postal_codes: list[PostalCodeLoad]
    agents: list[AgentLoad]


class SettingsView(BaseModel):
    require_delivery_code: bool
    offer_wave_size: int = Field(description="agents per wave (0 = every eligible agent)")
    offer_ttl_s: float = Field(description="how long an offer stays open")
    sla_hours: float = Field(description="a new shipment is due this long after it is created")
