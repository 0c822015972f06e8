"""The base of every event a service appends: its type, schema version, producer and reach.

An event class says once, for every caller, what kind of fact it is:

- ``event_type`` (CloudEvents ``type``) and ``schema_version`` (bumped with an upcaster, see
  ``waybill.common.registry``);
- ``service``: the producing service, hence the topic it travels on (``topic()``), which is
  how a consumer group's topics follow from the events it subscribes to;
- ``public``: published through the outbox and documented in the AsyncAPI document, or
  private to its service's own event store (e.g. orders' stock streams). The event store
  builds no envelope, headers or Kafka record for a private event, so no caller can publish
  one by mistake, or forget to publish a public one.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from waybill.common.topics import events_topic


class DomainEvent(BaseModel):
    """A frozen, versioned event model; subclasses set the class variables below."""

    model_config = ConfigDict(frozen=True)
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    service: ClassVar[str]
    public: ClassVar[bool] = True

    @classmethod
    def topic(cls) -> str:
        """The topic the producing service publishes this event on."""
        return events_topic(cls.service)
