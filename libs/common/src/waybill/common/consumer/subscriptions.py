"""A service's subscriptions: one table, event class -> handler, and everything derived from it.

Before this table a service declared what it consumes three or four times (the registry it
decodes with, a ``match`` in its handler, the consumer group's topics, the AsyncAPI document),
and they drifted apart: orders decoded every payments event and handled two, paying an inbox
transaction for each of the others. Now the table is the only declaration:

- ``registry``: the types the consumer decodes; any other ``ce_type`` is skipped before its
  record is decoded (``RecordProcessor``), with no inbox row and no transaction;
- ``dispatch``: the handler of each type, called with the ``Caller`` the envelope carries;
- ``topics``: where the group reads, from each event class's producing service;
- ``consumes``: the subscribe side of the AsyncAPI document (``waybill.common.asyncapi``).

A handler reads like a sentence: ``async def apply_payment_outcome(conn, caller, event)``; it
runs in the consumer's transaction, with the inbox row of the event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.contracts.event import DomainEvent
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore.cause import Caller
from waybill.common.registry import EventRegistry

# ``event`` is the subscribed class of the key the handler is registered under.
EventHandler = Callable[[AsyncConnection, Caller, Any], Awaitable[None]]


class Subscriptions:
    """What one consumer group consumes, and what it does with each event type."""

    def __init__(self, group: str, handlers: Mapping[type[DomainEvent], EventHandler]) -> None:
        if not handlers:
            raise ValueError(f"consumer group {group!r} subscribes to nothing")
        self.group = group
        self._handlers = dict(handlers)
        self._by_type = {model.event_type: handler for model, handler in handlers.items()}
        self.registry = EventRegistry().add(*handlers)

    @property
    def events(self) -> list[type[DomainEvent]]:
        """The subscribed event classes, in type order."""
        return sorted(self._handlers, key=lambda model: model.event_type)

    @property
    def topics(self) -> list[str]:
        """The topics the group reads: those of the services producing its events."""
        return sorted({model.topic() for model in self._handlers})

    @property
    def consumes(self) -> dict[str, list[type[DomainEvent]]]:
        """Subscribed event classes by topic (the AsyncAPI document's subscribe side)."""
        by_topic: dict[str, list[type[DomainEvent]]] = {}
        for model in self.events:
            by_topic.setdefault(model.topic(), []).append(model)
        return by_topic

    def handles(self, event_type: str) -> bool:
        return event_type in self._by_type

    async def dispatch(
        self, conn: AsyncConnection, envelope: EventEnvelope, event: BaseModel
    ) -> None:
        """The consumer runtime's handler: the event's own handler, with its caller."""
        await self._by_type[envelope.type](conn, Caller.from_envelope(envelope), event)
