"""The base of every event a service appends: its type, schema version, producer and reach.

An event class says once, for every caller, what kind of fact it is:

- ``event_type`` (CloudEvents ``type``) and ``schema_version`` (bumped with an upcaster, see
  ``waybill.common.registry``);
- ``service``: the producing service, hence the topic it travels on (``topic()``), which is
  how a consumer group's topics follow from the events it subscribes to;
- ``public``: published through the outbox and documented in the AsyncAPI document, or
  private to its service's own event store (e.g. orders' stock streams). The event store
  builds no envelope, headers or Kafka record for a private event, so no caller can publish
  one by mistake, or forget to publish a public one;
- ``upcasters``: from schema version n to n + 1, for every older version still in a stream or
  on a topic (registered wherever the class is, so no path decodes it without them);
- ``redacted``: fields that carry a secret sealed for one consumer (a delivery code): no
  outside view of the event (webhook, monitor, log) may show them (``redact``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from waybill.common.registry import Upcaster
from waybill.common.topics import events_topic


class DomainEvent(BaseModel):
    """A frozen, versioned event model; subclasses set the class variables below."""

    model_config = ConfigDict(frozen=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    service: ClassVar[str]
    public: ClassVar[bool] = True
    upcasters: ClassVar[Mapping[int, Upcaster]] = MappingProxyType({})
    redacted: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def topic(cls) -> str:
        """The topic the producing service publishes this event on."""
        return events_topic(cls.service)


def redact(model: type[DomainEvent] | None, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` of an event of class ``model`` without its redacted fields (any unknown
    type's data as it is: a class that declares none has nothing to hide)."""
    hidden = model.redacted if model is not None else frozenset()
    return {k: v for k, v in data.items() if k not in hidden}
