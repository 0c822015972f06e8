"""Event-type registry: versioned pydantic schemas per event type, with upcasting.

Producers validate what they emit; consumers parse what they receive. Unknown types are
skipped (``parse`` returns None) and older versions are upcast step by step to the newest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from waybill.common.envelope import EventEnvelope

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

    def parse(self, envelope: EventEnvelope) -> BaseModel | None:
        """The typed payload at the newest version, or None for a type we do not know."""
        entry = self._types.get(envelope.type)
        if entry is None:
            return None
        data, version = dict(envelope.data), envelope.schema_version
        while version < entry.latest_version:
            upcast = entry.upcasters.get(version)
            if upcast is None:
                raise ValueError(f"no upcaster for {envelope.type} v{version}")
            data, version = upcast(data), version + 1
        return entry.model.model_validate(data)
