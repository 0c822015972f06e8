"""Current-state tables of the shipping service, written in the same transaction as the events.

``shipments`` is the projection of each shipment's stream (and the row its writers lock);
``offers`` projects the offer events per agent (what ``GET /assignments`` lists); ``agents``
and ``tenant_settings`` are plain state, not event-sourced: an agent's profile is
configuration, while everything that happens to a shipment is in its stream.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from waybill.common.eventstore.schema import define_common_tables

metadata = MetaData()
events, outbox, inbox = define_common_tables(metadata)

shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("postal_code", Text, nullable=True),
    Column("agent_id", Text, nullable=True),
    Column("assignment_id", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("failure_reason", Text, nullable=True),
    Column("sla_due_at", DateTime(timezone=True), nullable=False),
    Column("sla_breached", Boolean, nullable=False, server_default="false"),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    # The open offer (NULL: none) and how many waves went out.
    Column("open_assignment_id", Text, nullable=True),
    Column("offer_expires_at", DateTime(timezone=True), nullable=True),
    Column("waves", Integer, nullable=False, server_default="0"),
    Column("code_hash", Text, nullable=True),
    Column("wrong_codes", Integer, nullable=False, server_default="0"),
    # When the dispatcher should look at it next (an offer's expiry; now, for a shipment
    # waiting for a wave; a recheck, when nobody was eligible). NULL: nothing to dispatch.
    Column("dispatch_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Exactly one shipment per order: the id is derived from the order, and this says so too.
    UniqueConstraint("tenant_id", "order_id", name="uq_shipments_tenant_order"),
)
Index(
    "ix_shipments_tenant_created",
    shipments.c.tenant_id,
    shipments.c.created_at,
    shipments.c.shipment_id,
)
Index(
    "ix_shipments_tenant_status",
    shipments.c.tenant_id,
    shipments.c.status,
    shipments.c.created_at,
)
# The dispatcher's scan: only shipments it has something to do for.
Index(
    "ix_shipments_dispatch",
    shipments.c.dispatch_at,
    postgresql_where=shipments.c.dispatch_at.is_not(None),
)
# The SLA job's scan: shipments not reported yet that can still breach (a late delivery
# reports its breach itself).
Index(
    "ix_shipments_sla_open",
    shipments.c.sla_due_at,
    postgresql_where=text("NOT sla_breached AND status NOT IN ('cancelled', 'delivered')"),
)
# An agent's active shipments (capacity), counted under the agent's lock.
Index(
    "ix_shipments_agent_active",
    shipments.c.agent_id,
    postgresql_where=text("status IN ('pending', 'in_transit', 'failed')"),
)

offers = Table(
    "offers",
    metadata,
    Column("assignment_id", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("shipment_id", Text, nullable=False),
    Column("postal_code", Text, nullable=True),
    Column("wave", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # offered | accepted | declined | expired | lost (another agent won) | withdrawn
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("assignment_id", "agent_id", name="pk_offers"),
)
Index("ix_offers_agent_status", offers.c.agent_id, offers.c.status, offers.c.expires_at)

agents = Table(
    "agents",
    metadata,
    Column("agent_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("service_zip_codes", ARRAY(Text), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("shifts", JSONB, nullable=False, server_default="[]"),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("key_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("capacity > 0", name="ck_agents_capacity"),
)
# Who serves a postal code: `service_zip_codes @> ARRAY[$zip]` through this GIN index (the
# EXPLAIN is in tests/integration/test_agents.py).
Index("ix_agents_zip_codes", agents.c.service_zip_codes, postgresql_using="gin")
Index("ix_agents_tenant_created", agents.c.tenant_id, agents.c.created_at, agents.c.agent_id)

tenant_settings = Table(
    "tenant_settings",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("require_delivery_code", Boolean, nullable=False, server_default="false"),
    # The tenant's own dispatch policy; NULL: the service's (WAYBILL_SHIPPING_OFFER_*).
    Column("offer_wave_size", Integer, nullable=True),
    Column("offer_ttl_s", Float, nullable=True),
    Column("sla_hours", Float, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
