"""charges on the work queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:20:00

The queue's tables (waybill.common.queue.schema); every payment that still needed the provider
(``next_attempt_at`` set) becomes a ``charges`` job due when it was, then the payment's own
claim columns go.
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
        INSERT INTO queue_jobs (queue, tenant_id, key, payload, status, attempts, run_at)
        SELECT 'charges', tenant_id, id, jsonb_build_object('payment_id', id),
               'queued', attempts, next_attempt_at
        FROM payments WHERE next_attempt_at IS NOT NULL
        """
    )
    op.drop_index(
        "ix_payments_next_attempt",
        table_name="payments",
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.drop_column("payments", "next_attempt_at")
    op.drop_column("payments", "attempts")


def downgrade() -> None:
    op.add_column(
        "payments", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "payments", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_payments_next_attempt",
        "payments",
        ["next_attempt_at"],
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    drop_queue_tables()
