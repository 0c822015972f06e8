"""webhook_endpoints.recent_starts: the sliding one-second window of rate_limit_per_s

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column(
        'webhook_endpoints',
        sa.Column(
            'recent_starts',
            postgresql.ARRAY(sa.DateTime(timezone=True)),
            server_default='{}',
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column('webhook_endpoints', 'recent_starts')
