"""Current-state tables of the payments service, written in the same transaction as the events.

``payments`` answers the API and drives the background work: ``next_attempt_at`` is set while
a payment still needs the provider (a charge, or the refund of a closed order) and says when it
may next be picked up -- by whoever claimed it last, or by the sweep once that claim lapses.
``provider_events`` remembers every provider webhook id applied, so a duplicate has no effect.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from waybill.common.eventstore.schema import define_common_tables

metadata = MetaData()
events, outbox, inbox = define_common_tables(metadata)

payments = Table(
    "payments",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("payment_method", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("provider_payment_id", Text, nullable=True),
    Column("failure_code", Text, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("refunded_cents", BigInteger, nullable=False, server_default="0"),
    Column("order_closed", Boolean, nullable=False, server_default="false"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant_id", "order_id", name="uq_payments_tenant_order"),
)
Index("ix_payments_tenant_created", payments.c.tenant_id, payments.c.created_at, payments.c.id)
Index("ix_payments_provider_payment_id", payments.c.provider_payment_id)
# Partial indexes: the sweep scans only payments with provider work left, the sync job only
# payments still processing.
Index(
    "ix_payments_next_attempt",
    payments.c.next_attempt_at,
    postgresql_where=payments.c.next_attempt_at.is_not(None),
)
Index(
    "ix_payments_processing",
    payments.c.updated_at,
    postgresql_where=payments.c.status == "processing",
)

provider_events = Table(
    "provider_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("payment_id", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
