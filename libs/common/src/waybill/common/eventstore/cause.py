"""What a command's events carry besides their data: who asked, and the ids that follow the
request (or the consumed event) into the events it causes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.eventstore.store import EventStore, NewEvent, RecordedEvent


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None


class ContractEvent(Protocol):
    """A versioned event model of the contract (``waybill.common.contracts``)."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


def new_events(events: Iterable[ContractEvent]) -> list[NewEvent]:
    """Decided events as the event store appends them."""
    return [
        NewEvent(type=e.event_type, data=e.model_dump(mode="json"), schema_version=e.schema_version)
        for e in events
    ]


async def append_decided(
    store: EventStore,
    conn: AsyncConnection,
    caller: Caller,
    *,
    stream_id: str,
    stream_type: str,
    expected_version: int,
    events: Iterable[ContractEvent],
    publish: bool = True,
) -> list[RecordedEvent]:
    """Append a command's decided events, stamped with the ids ``caller`` carries."""
    return await store.append(
        conn,
        stream_id=stream_id,
        stream_type=stream_type,
        tenant_id=caller.tenant_id,
        events=new_events(events),
        expected_version=expected_version,
        correlation_id=caller.correlation_id,
        causation_id=caller.causation_id,
        traceparent=caller.traceparent,
        publish=publish,
    )
