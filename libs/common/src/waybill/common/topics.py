"""Kafka topic names. Every topic literal in the project comes from here."""

from typing import Final

PREFIX: Final = "waybill"
DEAD_LETTERS: Final = "waybill.dlq"
PRODUCING_SERVICES: Final = ("orders", "payments", "shipping", "notifier")
# Every consumer group of the stack's topology (each service's ``Subscriptions`` group; a test
# in each service checks its group is here, so its retry topic exists).
CONSUMER_GROUPS: Final = ("orders", "payments", "shipping", "notifier", "monitor")


def events_topic(service: str) -> str:
    """The topic a service publishes its domain events to: ``waybill.<service>.events``."""
    return f"{PREFIX}.{service}.events"


def retry_topic(group: str) -> str:
    """Where the monitor re-delivers the dead letters of consumer group ``group``, and only
    that group reads: ``waybill.retry.<group>`` (ADR 0016)."""
    if group == "outcomes":  # that name is ``RETRY_OUTCOMES``
        raise ValueError("a consumer group cannot be called 'outcomes'")
    return f"{PREFIX}.retry.{group}"


ORDERS_EVENTS: Final = events_topic("orders")
PAYMENTS_EVENTS: Final = events_topic("payments")
SHIPPING_EVENTS: Final = events_topic("shipping")
NOTIFIER_EVENTS: Final = events_topic("notifier")
# What became of each retry: one record per retried dead letter, keyed by its retry id.
RETRY_OUTCOMES: Final = f"{PREFIX}.retry.outcomes"
RETRY_TOPICS: Final = tuple(retry_topic(group) for group in CONSUMER_GROUPS)

ALL_TOPICS: Final = (
    *(events_topic(s) for s in PRODUCING_SERVICES),
    DEAD_LETTERS,
    *RETRY_TOPICS,
    RETRY_OUTCOMES,
)
