"""The transactional outbox relay: committed outbox rows -> Kafka, one leader per database."""

from waybill.common.outbox.relay import DEFAULT_LOCK_KEY, OutboxRelay

__all__ = ["DEFAULT_LOCK_KEY", "OutboxRelay"]
