"""Current-state tables of the orders service, written in the same transaction as the events.

Queries read these; the event streams stay the source of truth (``GET /orders/{id}/events``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from waybill.common.eventstore.schema import define_common_tables

metadata = MetaData()
events, outbox, inbox = define_common_tables(metadata)

orders = Table(
    "orders",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("customer", JSONB, nullable=False),
    Column("items", JSONB, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("shipping_address", JSONB, nullable=False),
    Column("payment_method", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_orders_tenant_created", orders.c.tenant_id, orders.c.created_at, orders.c.order_id)
Index("ix_orders_tenant_status", orders.c.tenant_id, orders.c.status, orders.c.created_at)
# Partial index: the expiry runner scans only orders still waiting for payment.
Index(
    "ix_orders_pending_expiry",
    orders.c.expires_at,
    postgresql_where=orders.c.status == "pending_payment",
)

inventory = Table(
    "inventory",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("stream_id", Text, nullable=False, unique=True),
    Column("available", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "sku", name="pk_inventory"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_keys"),
)
# The purge of keys past WAYBILL_ORDERS_IDEMPOTENCY_TTL_S finds them without a full scan.
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)

reservations = Table(
    "reservations",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "sku", "order_id", name="pk_reservations"),
)
