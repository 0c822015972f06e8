"""The event store: append-only streams on PostgreSQL with optimistic concurrency.

``append`` writes the event rows *and* their outbox rows (the Kafka record, ready to send) in
the caller's transaction, so the caller's projection and inbox writes commit or roll back with
them. It costs one round trip: a single statement whose CTEs check the stream head, insert the
events and insert the outbox rows.

The same statement wakes the relay with ``pg_notify`` -- but only when the relay is asleep.
PostgreSQL serialises the commits of notifying transactions (a global lock held across the
commit's WAL flush), which halves throughput with concurrent writers. So the relay holds the
advisory lock ``OUTBOX_IDLE_LOCK_KEY`` while it sleeps: an append that cannot take it shared
notifies; one that can holds it (shared) until its commit is visible, which keeps the relay from
falling asleep before it has seen that row (the relay polls briefly instead). Nothing is
skipped either way; see ``waybill.common.outbox.relay``.

Whether an event leaves the service is the event's own declaration (``NewEvent.public``, from
``DomainEvent.public``): a private event gets no envelope, headers or outbox row, so callers
cannot disagree about it. ``load`` hands back typed events upcast to the newest schema version
through the store's ``EventRegistry`` (the same ``decode`` the consumer uses on envelopes),
which costs what the callers' own validation of each row cost before, and nothing on append.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from waybill.common.db import driver
from waybill.common.envelope import EventEnvelope
from waybill.common.eventstore.errors import ConcurrencyError
from waybill.common.eventstore.schema import OUTBOX_CHANNEL, OUTBOX_IDLE_LOCK_KEY
from waybill.common.observability.metrics import EVENTS_APPENDED
from waybill.common.observability.tracing import current_traceparent
from waybill.common.registry import EventRegistry

STREAM_VERSION_CONSTRAINT = "uq_events_stream_version"


@dataclass(frozen=True)
class NewEvent:
    """An event a command decided on, not yet stored."""

    type: str
    data: dict[str, Any]
    schema_version: int = 1
    public: bool = True  # published through the outbox; False: stays in this event store


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored: its place in the stream and in the database's global order."""

    global_position: int
    event_id: uuid.UUID
    stream_id: str
    stream_type: str
    version: int
    type: str
    schema_version: int
    tenant_id: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The typed event at the newest schema version (``load`` on a store with a registry);
    # ``data`` and ``schema_version`` stay as stored.
    event: BaseModel | None = field(default=None, compare=False)

    def typed(self) -> BaseModel:
        """``event``, for callers of a store built with a registry."""
        if self.event is None:
            raise TypeError(f"{self.type} v{self.version} was loaded without a registry")
        return self.event


def _append_sql(events: str, outbox: str | None) -> str:
    """The append statement; without ``outbox`` the events stay private to the service.

    The outbox rows come from their own arrays ($14-$16): only the public events of the
    append have one.

    `head` reads the stream's version through the (stream_id, version) index; the insert only
    happens when it equals the expected version, so a stale reader gets no rows back. Two
    writers that both read the same head race on the unique index instead: the loser blocks
    until the winner commits, then fails with a unique violation. Either way the caller sees
    ConcurrencyError and nothing is written.
    """
    insert_events = f"""
WITH head AS (
    SELECT coalesce(max(version), 0) AS version FROM {events} WHERE stream_id = $1
), appended AS (
    INSERT INTO {events} (event_id, stream_id, stream_type, version, type, schema_version,
                          tenant_id, data, metadata, recorded_at)
    SELECT e.event_id, $1, $2, e.version, e.type, e.schema_version, $3, e.data::jsonb,
           $4::jsonb, $5
    FROM unnest($6::uuid[], $7::int[], $8::text[], $9::int[], $10::text[])
         AS e(event_id, version, type, schema_version, data)
    WHERE (SELECT version FROM head) = $11
    RETURNING global_position, version
)"""
    if outbox is None:
        return f"""{insert_events}
SELECT head.version, appended.global_position, appended.version, NULL
FROM head LEFT JOIN appended ON true"""
    return f"""{insert_events}, published AS (
    INSERT INTO {outbox} (event_id, topic, key, value, headers)
    SELECT o.event_id, $12, $13, o.value, o.headers::jsonb
    FROM unnest($14::uuid[], $15::bytea[], $16::text[]) AS o(event_id, value, headers)
    WHERE EXISTS (SELECT 1 FROM appended)
)
SELECT head.version, appended.global_position, appended.version,
       CASE WHEN appended.version IS NOT NULL
                 AND NOT pg_try_advisory_xact_lock_shared({OUTBOX_IDLE_LOCK_KEY})
            THEN pg_notify('{OUTBOX_CHANNEL}', '') END
FROM head LEFT JOIN appended ON true"""


_COLUMNS = (
    "global_position, event_id, stream_id, stream_type, version, type, schema_version,"
    " tenant_id, data, metadata, recorded_at"
)


def _json(value: Any) -> dict[str, Any]:
    # Plain driver SQL bypasses SQLAlchemy's JSON result processing: jsonb arrives as text.
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return dict(loaded)


def _constraint_of(exc: BaseException) -> str | None:
    """The violated constraint's name, from the asyncpg error under SQLAlchemy's wrappers."""
    current: BaseException | None = exc
    while current is not None:
        name = getattr(current, "constraint_name", None)
        if isinstance(name, str):
            return name
        current = current.__cause__ or getattr(current, "orig", None)
    return None


class EventStore:
    """Streams of events in ``events``, each append mirrored into ``outbox`` for the relay."""

    def __init__(
        self,
        events: Table,
        outbox: Table,
        *,
        source: str,
        topic: str,
        service: str | None = None,
        registry: EventRegistry | None = None,
    ) -> None:
        self.source = source
        self.registry = registry
        self.topic = topic
        self.service = service or source.rstrip("/").rsplit("/", 1)[-1]
        self._append = _append_sql(f'"{events.name}"', f'"{outbox.name}"')
        self._append_private = _append_sql(f'"{events.name}"', None)
        self._load = (
            f'SELECT {_COLUMNS} FROM "{events.name}" WHERE stream_id = $1 AND version > $2'
            " ORDER BY version LIMIT $3"
        )
        self._version = (
            f'SELECT coalesce(max(version), 0) FROM "{events.name}" WHERE stream_id = $1'
        )

    async def append(
        self,
        conn: AsyncConnection,
        *,
        stream_id: str,
        stream_type: str,
        tenant_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        correlation_id: str,
        causation_id: str | None = None,
        traceparent: str | None = None,
    ) -> list[RecordedEvent]:
        """Append ``events`` after ``expected_version`` (0 = a new stream), in ``conn``'s
        transaction. Raises ``ConcurrencyError`` if the stream is not at that version.

        Each public event also gets its outbox row (its Kafka record); a private one
        (``NewEvent.public`` False) stays in this event store and never reaches Kafka.

        ``traceparent``: the trace the events belong to; None means the current span's (the
        request, consumer or job span appending them), so no append leaves the trace."""
        if not events:
            return []
        if traceparent is None:
            traceparent = current_traceparent()
        now = datetime.now(UTC)
        metadata = {"correlation_id": correlation_id}
        if causation_id is not None:
            metadata["causation_id"] = causation_id
        if traceparent is not None:
            metadata["traceparent"] = traceparent
        ids = [uuid.uuid4() for _ in events]
        versions = list(range(expected_version + 1, expected_version + 1 + len(events)))
        data: list[str] = []  # each event's data as JSON text
        published: list[uuid.UUID] = []  # the public events' ids, values and headers
        values: list[bytes] = []
        headers: list[str] = []
        for event_id, version, event in zip(ids, versions, events, strict=True):
            if not event.public:
                data.append(json.dumps(event.data, separators=(",", ":"), default=str))
                continue
            _, value, kafka_headers = EventEnvelope(
                id=event_id,
                source=self.source,
                type=event.type,
                subject=stream_id,
                time=now,
                tenant_id=tenant_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
                sequence=version,
                schema_version=event.schema_version,
                traceparent=traceparent,
                data=event.data,
            ).to_kafka()
            data.append(value.decode())
            published.append(event_id)
            values.append(value)
            headers.append(json.dumps([[name, raw.decode()] for name, raw in kafka_headers]))
        params: tuple[Any, ...] = (
            stream_id,
            stream_type,
            tenant_id,
            json.dumps(metadata),
            now,
            ids,
            versions,
            [event.type for event in events],
            [event.schema_version for event in events],
            data,
            expected_version,
        )
        statement = self._append_private
        if published:
            statement = self._append
            params += (self.topic, stream_id.encode(), published, values, headers)
        try:
            rows = await (await driver(conn)).fetch(statement, *params)
        except (IntegrityError, asyncpg.UniqueViolationError) as exc:
            if _constraint_of(exc) == STREAM_VERSION_CONSTRAINT:
                raise ConcurrencyError(stream_id, expected_version, None) from exc
            raise
        head = rows[0][0]
        if head != expected_version:
            raise ConcurrencyError(stream_id, expected_version, head)
        positions = {row[2]: row[1] for row in rows}
        EVENTS_APPENDED.labels(service=self.service, stream_type=stream_type).inc(len(events))
        return [
            RecordedEvent(
                global_position=positions[version],
                event_id=event_id,
                stream_id=stream_id,
                stream_type=stream_type,
                version=version,
                type=event.type,
                schema_version=event.schema_version,
                tenant_id=tenant_id,
                data=event.data,
                metadata=metadata,
                recorded_at=now,
            )
            for event_id, version, event in zip(ids, versions, events, strict=True)
        ]

    async def load(
        self,
        conn: AsyncConnection,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events after ``after_version``, in version order (at most ``limit``).

        With a registry, each carries its typed event upcast to the newest schema version
        (``RecordedEvent.typed()``); a stored type the registry does not know raises
        ``KeyError``: a store must know every event its streams hold."""
        rows = await (await driver(conn)).fetch(self._load, stream_id, after_version, limit)
        decode = self.registry.decode if self.registry is not None else None
        loaded = []
        for row in rows:
            data = _json(row["data"])
            loaded.append(
                RecordedEvent(
                    global_position=row["global_position"],
                    event_id=row["event_id"],
                    stream_id=row["stream_id"],
                    stream_type=row["stream_type"],
                    version=row["version"],
                    type=row["type"],
                    schema_version=row["schema_version"],
                    tenant_id=row["tenant_id"],
                    data=data,
                    metadata=_json(row["metadata"]),
                    recorded_at=row["recorded_at"],
                    event=None
                    if decode is None
                    else decode(row["type"], row["schema_version"], data),
                )
            )
        return loaded

    async def stream_version(self, conn: AsyncConnection, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""
        return int(await (await driver(conn)).fetchval(self._version, stream_id))
