"""Current-state tables of the payments service, written in the same transaction as the events.

``payments`` answers the API. The provider work a payment still needs (a charge, or the
refund of a closed order) is a job of the ``charges`` work queue (waybill.common.queue, its
tables added here), enqueued in the transaction that made the work necessary.
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
from waybill.common.queue import define_queue_tables

metadata = MetaData()
events, outbox, inbox = define_common_tables(metadata)
queue_jobs, queue_keys = define_queue_tables(metadata)

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
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("tenant_id", "order_id", name="uq_payments_tenant_order"),
)
Index("ix_payments_tenant_created", payments.c.tenant_id, payments.c.created_at, payments.c.id)
Index("ix_payments_provider_payment_id", payments.c.provider_payment_id)
# Partial index: the sync job scans only payments still processing.
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
