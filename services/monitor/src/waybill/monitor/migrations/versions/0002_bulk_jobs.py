"""bulk jobs on the work queue, and retention's index

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 07:40:00

The kit's work queue tables (waybill.common.queue.schema) for the bulk jobs' queue, the bulk
jobs with their selection (``dlq_jobs``, ``dlq_job_items``), and an index retention deletes
finished dead letters by.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from waybill.common.queue.migration import create_queue_tables, drop_queue_tables

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    create_queue_tables()
    op.create_table(
        "dlq_jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("selection", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("succeeded", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dlq_jobs_tenant_created", "dlq_jobs", ["tenant_id", "created_at"])
    op.create_table(
        "dlq_job_items",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("dead_letter_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "position"),
    )
    op.create_index(
        "ix_dead_letters_status_updated", "dead_letters", ["status", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_status_updated", table_name="dead_letters")
    op.drop_table("dlq_job_items")
    op.drop_index("ix_dlq_jobs_tenant_created", table_name="dlq_jobs")
    op.drop_table("dlq_jobs")
    drop_queue_tables()
