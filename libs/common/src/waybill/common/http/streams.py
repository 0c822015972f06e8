"""``GET /<aggregate>/{id}/events``: one page of a stream, the same way on every service.

The cursor is the last version returned (``{"v": n}``); each event's data is shown without the
fields its class declares redacted (``DomainEvent.redacted``: a sealed delivery code), so an
API response never carries what only the notifier may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from waybill.common.contracts.event import DomainEvent, redact
from waybill.common.eventstore import RecordedEvent
from waybill.common.http.pagination import Page, PageParams, encode_cursor
from waybill.common.http.problems import ProblemError
from waybill.common.registry import EventRegistry


class EventView(BaseModel):
    id: str
    type: str
    version: int
    schema_version: int
    data: dict[str, Any]
    recorded_at: datetime
    global_position: int


def after_version(page: PageParams) -> int:
    """The stream version a page continues after (0: from the start); 422 for a cursor that is
    not one of a stream's."""
    after = page.after.get("v", 0) if page.after else 0
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ProblemError(422, "INVALID_CURSOR", "Invalid cursor", "not a cursor of this list")
    return after


def stream_page(
    recorded: Sequence[RecordedEvent], last: int | None, registry: EventRegistry | None = None
) -> Page[EventView]:
    """The page of ``recorded`` (``last``: the version to continue after, None at the end)."""

    def model(event_type: str) -> type[DomainEvent] | None:
        if registry is None or not registry.knows(event_type):
            return None
        found = registry.model(event_type)
        return found if issubclass(found, DomainEvent) else None

    items = [
        EventView(
            id=str(r.event_id),
            type=r.type,
            version=r.version,
            schema_version=r.schema_version,
            data=redact(model(r.type), r.data),
            recorded_at=r.recorded_at,
            global_position=r.global_position,
        )
        for r in recorded
    ]
    return Page[EventView](
        items=items, next_cursor=encode_cursor({"v": last}) if last is not None else None
    )
