"""Tables of the notifier: its event store, webhook endpoints, the messages fanned out to them
(one per endpoint and event: a unique key, not a check-then-insert) and every attempt."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
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
# The deliveries (and, next, emails and SMS) are jobs of the kit's work queue.
queue_jobs, queue_keys = define_queue_tables(metadata)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("description", Text, nullable=True),
    Column("headers", JSONB, nullable=False, server_default="{}"),
    Column("rate_limit_per_s", Integer, nullable=True),
    # The starts of the attempts of the last second (rate_limit_per_s: a sliding window,
    # shared by every notifier replica; repository.reserve_start).
    Column("recent_starts", ARRAY(DateTime(timezone=True)), nullable=False, server_default="{}"),
    Column("status", Text, nullable=False, server_default="active"),
    Column("disabled_reason", Text, nullable=True),
    Column("secret", Text, nullable=False),
    # The secret before the last rotation, still signing until it expires.
    Column("previous_secret", Text, nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    # Its stream's version: deliveries' outcomes and disabling are events of the endpoint.
    Column("version", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index(
    "ix_webhook_endpoints_tenant_created",
    webhook_endpoints.c.tenant_id,
    webhook_endpoints.c.created_at,
    webhook_endpoints.c.endpoint_id,
)

webhook_messages = Table(
    "webhook_messages",
    metadata,
    # The message id is the webhook-id of every attempt and replay of this message.
    Column("message_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column(
        "endpoint_id",
        Text,
        ForeignKey("webhook_endpoints.endpoint_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("subject", Text, nullable=False),  # the event's stream (its order, shipment, ...)
    Column("body", JSONB, nullable=False),  # {"type","timestamp","data"}, redacted
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_messages_endpoint_event"),
)
Index(
    "ix_webhook_messages_endpoint_created",
    webhook_messages.c.endpoint_id,
    webhook_messages.c.created_at,
    webhook_messages.c.message_id,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("message_id", Text, ForeignKey("webhook_messages.message_id", ondelete="CASCADE")),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("error_class", Text, nullable=True),
    Column("response_excerpt", Text, nullable=True),
)
Index("ix_webhook_attempts_message", webhook_attempts.c.message_id, webhook_attempts.c.attempt)

# --- customer notifications (email and SMS) -------------------------------------------------

# The customer's contact per order, from order.placed and order.paid v2 (v2 wins). Shipment
# events carry only the order id: this is where their recipient comes from.
order_contacts = Table(
    "order_contacts",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("phone", Text, nullable=True),
    Column("source", Text, nullable=False),  # the event type it was last taken from
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Events that notify a customer whose contact is not known yet (topics are consumed
# independently: a shipment event may come before its order's). Released into notifications
# in the transaction that records the contact (see customers.py).
awaiting_contact = Table(
    "awaiting_contact",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("data", JSONB, nullable=False),  # the event as consumed (its code still sealed)
    Column("correlation_id", Text, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_awaiting_contact_order", awaiting_contact.c.tenant_id, awaiting_contact.c.order_id)

notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", Text, primary_key=True),  # ntf_...
    Column("tenant_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("channel", Text, nullable=False),  # email | sms
    Column("template", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="queued"),  # queued | sent | failed
    Column("priority", Text, nullable=False),  # urgent | high | normal | low
    Column("send_at", DateTime(timezone=True), nullable=False),
    # Attempts with a recorded outcome (a process killed mid-attempt spends none).
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # The email's Message-ID, chosen at insert and reused by every attempt (None for SMS).
    Column("message_id", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    # What the templates show (the delivery code sealed, never in plain text).
    Column("context", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One message per (event, channel, recipient): inserts are ON CONFLICT DO NOTHING.
    UniqueConstraint("event_id", "channel", "recipient", name="uq_notifications_event_channel"),
)
Index(
    "ix_notifications_tenant_order_created",
    notifications.c.tenant_id,
    notifications.c.order_id,
    notifications.c.created_at,
    notifications.c.notification_id,
)
Index(
    "ix_notifications_tenant_created",
    notifications.c.tenant_id,
    notifications.c.created_at,
    notifications.c.notification_id,
)
