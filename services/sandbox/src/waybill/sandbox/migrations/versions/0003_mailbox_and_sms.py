"""the SMTP server's mailbox and the SMS provider's messages

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "mailbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mail_from", sa.Text(), nullable=False),
        sa.Column("rcpt_tos", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
    )
    op.create_index("ix_mailbox_message_id", "mailbox", ["message_id"])
    op.create_index("ix_mailbox_rcpt_tos", "mailbox", ["rcpt_tos"], postgresql_using="gin")
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("to", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sms_messages_to", "sms_messages", ["to", "created"])


def downgrade() -> None:
    op.drop_table("sms_messages")
    op.drop_table("mailbox")
