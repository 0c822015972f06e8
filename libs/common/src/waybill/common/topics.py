"""Kafka topic names. Every topic literal in the project comes from here."""

from typing import Final

PREFIX: Final = "waybill"
DEAD_LETTERS: Final = "waybill.dlq"
PRODUCING_SERVICES: Final = ("orders", "payments", "shipping", "notifier")


def events_topic(service: str) -> str:
    """The topic a service publishes its domain events to: ``waybill.<service>.events``."""
    return f"{PREFIX}.{service}.events"


ORDERS_EVENTS: Final = events_topic("orders")
PAYMENTS_EVENTS: Final = events_topic("payments")
SHIPPING_EVENTS: Final = events_topic("shipping")
NOTIFIER_EVENTS: Final = events_topic("notifier")

ALL_TOPICS: Final = (*(events_topic(s) for s in PRODUCING_SERVICES), DEAD_LETTERS)
