"""index idempotency_keys.created_at (the purge of expired Idempotency-Keys)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:20:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index(
        'ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_idempotency_keys_created_at', table_name='idempotency_keys')
