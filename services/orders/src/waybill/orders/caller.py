"""Who asks for a command, and the ids that follow it into the events it causes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from waybill.common.contracts.orders import OrderEvent
from waybill.common.eventstore import NewEvent


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None


def new_events(events: Sequence[OrderEvent]) -> list[NewEvent]:
    return [
        NewEvent(type=e.event_type, data=e.model_dump(mode="json"), schema_version=e.schema_version)
        for e in events
    ]
