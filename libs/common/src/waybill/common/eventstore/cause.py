"""What a command's events carry besides their data: who asked, and the ids that follow the
request (or the consumed event) into the events it causes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.event import DomainEvent
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore.store import EventStore, NewEvent, RecordedEvent
from waybill.common.observability.tracing import current_traceparent


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    correlation_id: str
    causation_id: str | None = None
    # None: the span current when the events are appended (``EventStore.append``).
    traceparent: str | None = None

    @classmethod
    def from_envelope(cls, envelope: EventEnvelope) -> Caller:
        """The caller of a command a consumed event asks for: the event's tenant and
        correlation id, caused by that event, in its trace: the span handling it (the
        consumer's, a child of the producer's) when there is one, else the producer's."""
        return cls(
            tenant_id=envelope.tenant_id,
            correlation_id=envelope.correlation_id,
            causation_id=str(envelope.id),
            traceparent=current_traceparent() or envelope.traceparent,
        )


def new_events(events: Iterable[DomainEvent]) -> list[NewEvent]:
    """Decided events as the event store appends them (public or private as they declare)."""
    return [
        NewEvent(
            type=e.event_type,
            data=e.model_dump(mode="json"),
            schema_version=e.schema_version,
            public=e.public,
        )
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
    events: Iterable[DomainEvent],
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
    )
