"""capacity: delivery agents, and each shipment's postal code and agent

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:20:00

The read models of the capacity view: ``agent_states`` (a delivery agent's profile from
shipping's ``agent.registered`` and ``agent.updated``) and, on ``shipment_states``, the
shipment's postal code and the agent who accepted it. Existing rows get theirs from
``waybill monitor rebuild``.
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
    op.add_column("shipment_states", sa.Column("postal_code", sa.Text(), nullable=True))
    op.add_column("shipment_states", sa.Column("agent_id", sa.Text(), nullable=True))
    op.create_index(
        "ix_shipment_states_tenant_agent", "shipment_states", ["tenant_id", "agent_id"]
    )
    op.create_table(
        "agent_states",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("sequence", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("service_zip_codes", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("tenant_id", "agent_id"),
    )


def downgrade() -> None:
    op.drop_table("agent_states")
    op.drop_index("ix_shipment_states_tenant_agent", table_name="shipment_states")
    op.drop_column("shipment_states", "agent_id")
    op.drop_column("shipment_states", "postal_code")
