"""Tables of the monitor: its copy of what it consumed, the read models projected from it, and
the dead letters with their audit trail.

The monitor appends no events of its own (it is not event-sourced); its database holds the
kit's common tables only because ``ServiceKit`` builds every service the same way.

Read models are current-state rows, one per stream (order, shipment, payment) or per message
(webhook message, customer notification), each holding the sequence of the event that last set
its status: an older event never moves a status back (``projections``). Counts are GROUP BYs
over them, so a figure can never drift from the rows it counts.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from waybill.common.eventstore.schema import define_common_tables
from waybill.common.queue import define_queue_tables

metadata = MetaData()
events, outbox, inbox = define_common_tables(metadata)

# What the monitor consumed from the events topics, in consumption order (``position``): the
# source every read model is rebuilt from (``waybill monitor rebuild``). Its primary key is
# the event id, so inserting a row is also the inbox check of the event.
consumed_events = Table(
    "consumed_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("position", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("consumed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# The recent-events feed: a tenant's newest events.
Index("ix_consumed_events_tenant_time", consumed_events.c.tenant_id, consumed_events.c.time)


def _state_table(name: str, key: str, *columns: Column[object]) -> Table:
    """A read model of one row per ``key`` of a tenant, with the sequence that set its status."""
    return Table(
        name,
        metadata,
        Column("tenant_id", Text, nullable=False),
        Column(key, Text, nullable=False),
        Column("status", Text, nullable=True),
        Column("sequence", BigInteger, nullable=False, server_default="0"),
        *columns,
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("tenant_id", key),
    )


order_states = _state_table("order_states", "order_id")
# A shipment's status, postal code and the agent who accepted it: what the capacity view counts
# (``capacity``), as shipping does.
shipment_states = _state_table(
    "shipment_states",
    "shipment_id",
    Column("postal_code", Text, nullable=True),
    Column("agent_id", Text, nullable=True),
)
Index("ix_shipment_states_tenant_agent", shipment_states.c.tenant_id, shipment_states.c.agent_id)
payment_states = _state_table(
    "payment_states",
    "payment_id",
    Column("provider", Text, nullable=True),
    Column("currency", Text, nullable=True),
    Column("captured_cents", BigInteger, nullable=False, server_default="0"),
    Column("refunded_cents", BigInteger, nullable=False, server_default="0"),
)
# A webhook message's final outcome (``succeeded|failed``) and when it was reached.
webhook_messages = _state_table(
    "webhook_messages",
    "message_id",
    Column("endpoint_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_webhook_messages_tenant_at", webhook_messages.c.tenant_id, webhook_messages.c.at)
notification_states = _state_table(
    "notification_states", "notification_id", Column("channel", Text, nullable=False)
)

# A delivery agent's profile from shipping's agent events (status ``active|inactive``); each
# event carries the whole profile, so the newest sequence sets every column.
agent_states = _state_table(
    "agent_states",
    "agent_id",
    Column("name", Text, nullable=True),
    Column("capacity", Integer, nullable=True),
    Column("service_zip_codes", ARRAY(Text), nullable=True),
)

READ_MODELS = (
    order_states,
    shipment_states,
    payment_states,
    webhook_messages,
    notification_states,
    agent_states,
)

# One row per dead letter: its first record on waybill.dlq (a failed retry of it updates it).
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Text, primary_key=True),  # dlq_<uuid hex>, the monitor's own
    Column("tenant_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # consumer | delivery
    Column("status", Text, nullable=False, server_default="pending"),
    Column("service", Text, nullable=False),
    Column("consumer_group", Text, nullable=False),
    Column("original_topic", Text, nullable=True),
    Column("original_partition", Integer, nullable=True),
    Column("original_offset", BigInteger, nullable=True),
    Column("event_id", Text, nullable=True),
    Column("event_type", Text, nullable=True),
    Column("schema_version", Integer, nullable=True),
    Column("subject", Text, nullable=True),
    # The original record: key, value and its non-dlq_ headers (name, UTF-8 text) in order.
    Column("record_key", LargeBinary, nullable=True),
    Column("record_value", LargeBinary, nullable=True),
    Column("record_headers", JSONB, nullable=False, server_default="[]"),
    Column("error", Text, nullable=False, server_default=""),
    Column("exception_type", Text, nullable=True),
    Column("stack", Text, nullable=True),
    Column("failure_type", Text, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("remediation", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", DateTime(timezone=True), nullable=False),
    Column("last_failed_at", DateTime(timezone=True), nullable=False),
    # Failed again while being retried (the runtime's dlq_retry_of).
    Column("recurred", Boolean, nullable=False, server_default="false"),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("delivery_id", Text, nullable=True),
    Column("endpoint_id", Text, nullable=True),
    Column("error_class", Text, nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("dlq_topic", Text, nullable=False),
    Column("dlq_partition", Integer, nullable=False),
    Column("dlq_offset", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("dlq_topic", "dlq_partition", "dlq_offset", name="uq_dead_letters_record"),
)
Index(
    "ix_dead_letters_tenant_created",
    dead_letters.c.tenant_id,
    dead_letters.c.created_at,
    dead_letters.c.id,
)
Index("ix_dead_letters_tenant_fingerprint", dead_letters.c.tenant_id, dead_letters.c.fingerprint)
Index("ix_dead_letters_delivery", dead_letters.c.delivery_id)

# Every waybill.dlq record ingested, by its own coordinates, and the dead letter it went into
# (a new one, or an earlier one it recurred as): a redelivered record is recognised.
dlq_records = Table(
    "dlq_records",
    metadata,
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("dead_letter_id", Text, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("topic", "partition", "offset"),
)

# Who (API key id, or "monitor" for what the consumer did) did what to a dead letter, and when.
dead_letter_audit = Table(
    "dead_letter_audit",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("dead_letter_id", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", JSONB, nullable=False, server_default="{}"),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_dead_letter_audit_letter", dead_letter_audit.c.dead_letter_id, dead_letter_audit.c.id)

# --- bulk jobs (``bulk``) -------------------------------------------------------------------

# The kit's work queue: one queue job per bulk job runs it (``bulk.BULK_QUEUE``).
queue_jobs, queue_keys = define_queue_tables(metadata)

# A bulk retry or abandon of dead letters: its selection (``dlq_job_items``) is taken when it
# is created, its progress counted as each item is done, in the item's own transaction.
dlq_jobs = Table(
    "dlq_jobs",
    metadata,
    Column("id", Text, primary_key=True),  # job_<uuid hex>
    Column("tenant_id", Text, nullable=False),
    Column("action", Text, nullable=False),  # retry | abandon
    Column("priority", Text, nullable=False),  # normal | high | critical
    Column("status", Text, nullable=False),  # queued | running | succeeded | failed | cancelled
    Column("actor", Text, nullable=False),
    Column("selection", JSONB, nullable=False),  # the request's ids and filter, as given
    Column("total", Integer, nullable=False),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("succeeded", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)
Index("ix_dlq_jobs_tenant_created", dlq_jobs.c.tenant_id, dlq_jobs.c.created_at)

# One row per dead letter of a job's selection, in the order the job works through them;
# ``outcome`` (succeeded | failed) is set when it was done.
dlq_job_items = Table(
    "dlq_job_items",
    metadata,
    Column("job_id", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("dead_letter_id", Text, nullable=False),
    Column("outcome", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("done_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("job_id", "position"),
)

# Retention finds finished dead letters by their last change.
Index("ix_dead_letters_status_updated", dead_letters.c.status, dead_letters.c.updated_at)
