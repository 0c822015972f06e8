"""Event-type registry: versioned pydantic schemas per event type, with upcasting.

Producers validate what they emit; consumers parse what they receive; the event store types
what it loads. All three go through ``decode``, so an event stored or sent at an older schema
version is upcast step by step to the newest, the same way on every path. Unknown types are
skipped (``parse`` returns None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from waybill.common.envelope import EventEnvelope

if TYPE_CHECKING:
    from waybill.common.contracts.event import DomainEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class _TypeEntry:
    latest_version: int
    model: type[BaseModel]
    upcasters: dict[int, Upcaster] = field(default_factory=dict)  # from_version -> fn


class EventRegistry:
    """Knows every event type a service produces or consumes."""

    def __init__(self) -> None:
        self._types: dict[str, _TypeEntry] = {}

    def register(self, event_type: str, model: type[BaseModel], *, version: int = 1) -> None:
        self._types[event_type] = _TypeEntry(latest_version=version, model=model)

    def add(self, *models: type[DomainEvent]) -> EventRegistry:
        """Register event classes under the type and version they declare; returns self."""
        for model in models:
            self.register(model.event_type, model, version=model.schema_version)
            self._types[model.event_type].upcasters.update(model.upcasters)
        return self

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register ``fn`` turning data of ``from_version`` into ``from_version + 1``."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._types[event_type].upcasters[from_version] = fn
            return fn

        return decorate

    def knows(self, event_type: str) -> bool:
        return event_type in self._types

    def latest_version(self, event_type: str) -> int:
        return self._types[event_type].latest_version

    def types(self) -> list[str]:
        return sorted(self._types)

    def model(self, event_type: str) -> type[BaseModel]:
        return self._types[event_type].model

    def models(self) -> list[type[BaseModel]]:
        """The registered models, in type order."""
        return [self._types[name].model for name in self.types()]

    def parse(self, envelope: EventEnvelope) -> BaseModel | None:
        """The typed payload at the newest version, or None for a type we do not know."""
        if envelope.type not in self._types:
            return None
        return self.decode(envelope.type, envelope.schema_version, envelope.data)

    def decode(self, event_type: str, schema_version: int, data: dict[str, Any]) -> BaseModel:
        """``data`` of ``event_type`` at ``schema_version`` as the newest model.

        Raises ``KeyError`` for a type this registry does not know and ``ValueError`` when an
        upcaster is missing or the data does not validate.
        """
        entry = self._types[event_type]
        version = schema_version
        while version < entry.latest_version:
            upcast = entry.upcasters.get(version)
            if upcast is None:
                raise ValueError(f"no upcaster for {event_type} v{version}")
            data, version = upcast(dict(data)), version + 1
        return entry.model.model_validate(data)
