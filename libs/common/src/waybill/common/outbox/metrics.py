"""Prometheus metrics of the outbox relay (the backlog gauge is shared, in observability)."""

from __future__ import annotations

from prometheus_client import Counter

from waybill.common.observability.metrics import OUTBOX_BACKLOG

OUTBOX_PUBLISHED = Counter(
    "waybill_outbox_published_total",
    "Outbox rows published to Kafka (acknowledged by the broker) by this process's relay.",
    ["service"],
)

__all__ = ["OUTBOX_BACKLOG", "OUTBOX_PUBLISHED"]
