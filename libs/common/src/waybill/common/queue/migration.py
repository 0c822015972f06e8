"""Alembic operations that create the work queue's tables (``schema``) in a service's
revision: one definition for every service database that has queues."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create_queue_tables() -> None:
    """The tables and indexes of ``define_queue_tables``, as they are at this revision."""
    op.create_table(
        "queue_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "enqueued_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    due = sa.text("status IN ('queued', 'running')")
    op.create_index("ix_queue_jobs_due", "queue_jobs", ["queue", "run_at"], postgresql_where=due)
    op.create_index(
        "ix_queue_jobs_key_due", "queue_jobs", ["queue", "key", "run_at"], postgresql_where=due
    )
    op.create_index("ix_queue_jobs_tenant", "queue_jobs", ["tenant_id", "id"])
    failed = sa.text("status = 'failed'")
    op.create_index("ix_queue_jobs_failed", "queue_jobs", ["queue"], postgresql_where=failed)
    op.create_index(
        "ix_queue_jobs_finished",
        "queue_jobs",
        ["queue", "finished_at"],
        postgresql_where=sa.text("status = 'done'"),
    )
    op.create_table(
        "queue_keys",
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column(
            "next_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("busy_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("queue", "key", name="pk_queue_keys"),
    )


def drop_queue_tables() -> None:
    op.drop_table("queue_keys")
    op.drop_table("queue_jobs")
