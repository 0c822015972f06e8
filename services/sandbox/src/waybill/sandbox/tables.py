"""The sandbox database (``waybill_sandbox``): intents, refunds, idempotency, webhooks, the
mailbox of the SMTP server and the messages of the SMS provider.

The ledger is not a table of its own: a charge is an intent created ``succeeded`` or
``processing`` (``charged``), so a double charge would show up as two intents, which is
exactly what the ledger is there to expose.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from waybill.common.queue import define_queue_tables

metadata = MetaData()
# The work queue (waybill.common.queue): the "webhooks" queue sends the deliveries.
queue_jobs, queue_keys = define_queue_tables(metadata)

intents = Table(
    "payment_intents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("payment_method", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("amount_refunded", BigInteger, nullable=False, server_default="0"),
    Column("last_payment_error", JSONB, nullable=True),
    Column("charged", Boolean, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    # Async intents: when they turn succeeded, and whether a webhook announces it.
    Column("settle_at", DateTime(timezone=True), nullable=True),
    Column("notify", Boolean, nullable=False, server_default="true"),
    Index(
        "ix_payment_intents_due",
        "settle_at",
        postgresql_where=text("status = 'processing'"),
    ),
    Index("ix_payment_intents_metadata", "metadata", postgresql_using="gin"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("payment_intent", Text, ForeignKey("payment_intents.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Index("ix_refunds_intent", "payment_intent"),
)

# Insert-first: the unique key makes a concurrent request with the same key wait for the
# first one's transaction, then replay its stored answer (see idempotency.py).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("payment_intent", Text, nullable=False),
    Column("body", Text, nullable=False),  # the exact bytes every attempt signs and sends
    Column("created", DateTime(timezone=True), nullable=False),
    Column("dropped", Boolean, nullable=False),
    Column("copies", Integer, nullable=False),
    Index("ix_webhook_events_intent", "payment_intent"),
)

# One row per copy to send (two for a duplicated event): what the history shows. When to send
# it next is its job's business (one "webhooks" job per delivery, written in the same
# transaction), so pending deliveries survive a restart.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, ForeignKey("webhook_events.id"), nullable=False),
    Column("status", Text, nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_deliveries_event", "event_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("delivery_id", BigInteger, ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id"),
)

# Every message the SMTP server accepted (smtp.py), as it arrived: the raw text is the source of
# truth, the header columns are there to filter on (GET /mailbox parses the rest at read time).
mailbox = Table(
    "mailbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("mail_from", Text, nullable=False),
    Column("rcpt_tos", ARRAY(Text), nullable=False),
    Column("subject", Text, nullable=True),
    Column("message_id", Text, nullable=True),
    Column("raw", Text, nullable=False),
    Column("size", Integer, nullable=False),  # bytes, as received
    Index("ix_mailbox_message_id", "message_id"),
    Index("ix_mailbox_rcpt_tos", "rcpt_tos", postgresql_using="gin"),
)

# What the SMS provider "sent" (sms.py). A retry with the same Idempotency-Key replays the stored
# answer through idempotency_keys and stores nothing here.
sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", Text, primary_key=True),
    Column("to", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("idempotency_key", Text, nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Index("ix_sms_messages_to", "to", "created"),
)
