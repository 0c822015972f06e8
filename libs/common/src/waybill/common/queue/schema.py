"""The work queue's two tables, defined once and added to a service's own metadata.

``queue_jobs`` holds every job of every queue of the database. A claimed job is ``running``
with ``run_at`` moved to the end of its lease: "due" is then one predicate for new jobs,
retries and lapsed leases alike (``status IN ('queued', 'running') AND run_at <= now``), served
by one partial index. ``attempts`` is the claim's fencing token: a worker whose lease lapsed
cannot complete a job that someone else has claimed again since.

``queue_keys`` is the per-key state of keyed queues (serial, rate-limited or fair): when the
key may start its next job (rate limit), until when it is busy (serial) and when it was last
served (round-robin fairness). Claims lock these rows, never read them from a snapshot, so two
workers can never both take a serial key (see ``statements``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# The NOTIFY channel of every queue of a database; the payload is the queue's name.
QUEUE_CHANNEL = "waybill_queue"


def define_queue_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add ``queue_jobs`` and ``queue_keys`` to ``metadata``; a service's Alembic revision
    creates them (its ``env`` compares against the same metadata)."""
    jobs = Table(
        "queue_jobs",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("queue", Text, nullable=False),
        Column("tenant_id", Text, nullable=True),
        Column("key", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("priority", Integer, nullable=False, server_default="0"),
        Column("status", Text, nullable=False),  # queued | running | done | failed
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("run_at", DateTime(timezone=True), nullable=False),
        Column("deadline", DateTime(timezone=True), nullable=True),
        Column("enqueued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("finished_at", DateTime(timezone=True), nullable=True),
        Column("last_error", Text, nullable=True),
        Index(
            "ix_queue_jobs_due",
            "queue",
            "run_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index(
            "ix_queue_jobs_key_due",
            "queue",
            "key",
            "run_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_queue_jobs_tenant", "tenant_id", "id"),
        Index("ix_queue_jobs_failed", "queue", postgresql_where=text("status = 'failed'")),
        Index(
            "ix_queue_jobs_finished",
            "queue",
            "finished_at",
            postgresql_where=text("status = 'done'"),
        ),
    )
    keys = Table(
        "queue_keys",
        metadata,
        Column("queue", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("next_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("busy_until", DateTime(timezone=True), nullable=True),
        Column("served_at", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("queue", "key", name="pk_queue_keys"),
    )
    return jobs, keys
