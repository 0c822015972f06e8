"""The event store: streams of events on PostgreSQL, appended with their outbox rows."""

from waybill.common.eventstore.cause import Caller, append_decided, new_events
from waybill.common.eventstore.errors import ConcurrencyError
from waybill.common.eventstore.retry import retry_on_conflict
from waybill.common.eventstore.schema import OUTBOX_CHANNEL, define_common_tables
from waybill.common.eventstore.store import EventStore, NewEvent, RecordedEvent

__all__ = [
    "OUTBOX_CHANNEL",
    "Caller",
    "ConcurrencyError",
    "EventStore",
    "NewEvent",
    "RecordedEvent",
    "append_decided",
    "define_common_tables",
    "new_events",
    "retry_on_conflict",
]
