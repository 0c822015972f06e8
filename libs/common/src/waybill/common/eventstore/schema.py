"""Tables every service database has: the event store, the outbox and the inbox.

Services add their own projection tables to ``metadata`` via ``define_common_tables``'s
MetaData; Alembic migrations per service create all of them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

OUTBOX_CHANNEL = "waybill_outbox"
# Advisory lock the outbox relay holds while it sleeps waiting for OUTBOX_CHANNEL (see
# waybill.common.outbox.relay): appends only NOTIFY when they cannot share it.
OUTBOX_IDLE_LOCK_KEY = 0x77B1_0B0C_1D1E


def define_common_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    """Add ``events``, ``outbox`` and ``inbox`` to ``metadata`` and return them."""
    events = Table(
        "events",
        metadata,
        Column("global_position", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("stream_id", Text, nullable=False),
        Column("stream_type", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("type", Text, nullable=False),
        Column("schema_version", Integer, nullable=False, server_default="1"),
        Column("tenant_id", Text, nullable=False),
        Column("data", JSONB, nullable=False),
        Column("metadata", JSONB, nullable=False, server_default="{}"),
        Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
    )
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer_group", Text, nullable=False),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer_group", "event_id", name="pk_inbox"),
    )
    Index("ix_events_tenant", events.c.tenant_id, events.c.global_position)
    return events, outbox, inbox
