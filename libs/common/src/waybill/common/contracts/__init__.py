"""The event contract between services: one versioned pydantic schema per event type.

Producers build these models; consumers parse incoming envelopes into them through an
``EventRegistry``. Services share only this contract, never each other's code or tables.
Every event class derives from ``DomainEvent``, which says who produces it and whether it
leaves its service (``public``).
"""

from waybill.common.contracts.event import DomainEvent

__all__ = ["DomainEvent"]
