"""webhook deliveries on the work queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:15:00

The queue's tables (waybill.common.queue.schema); every pending delivery becomes a job due when
its next attempt was, then the delivery's own scheduling column goes.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from waybill.common.queue.migration import create_queue_tables, drop_queue_tables

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    create_queue_tables()
    op.execute(
        """
        INSERT INTO queue_jobs (queue, key, payload, status, attempts, run_at, deadline)
        SELECT 'webhooks', d.id::text,
               jsonb_build_object('delivery_id', d.id, 'body', e.body),
               'queued', d.attempts, d.next_attempt_at, d.expires_at
        FROM webhook_deliveries AS d JOIN webhook_events AS e ON e.id = d.event_id
        WHERE d.status = 'pending'
        """
    )
    op.drop_index(
        "ix_webhook_deliveries_due",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_column("webhook_deliveries", "next_attempt_at")


def downgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    drop_queue_tables()
