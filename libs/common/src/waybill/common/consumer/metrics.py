"""Metrics of the consumer runtime.

Handler time, retries, dead letters and lag are shared families, defined once in
``waybill.common.observability.metrics``; this module adds only the per-outcome record count.
"""

from __future__ import annotations

from prometheus_client import Counter

from waybill.common.observability.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    HANDLER_DURATION,
    HANDLER_RETRIES,
)

__all__ = ["CONSUMER_LAG", "DEAD_LETTERS", "HANDLER_DURATION", "HANDLER_RETRIES", "RECORDS"]

RECORDS = Counter(
    "waybill_consumer_records_total",
    "Records consumed, by outcome: applied, duplicate, skipped (unknown type), dead_lettered.",
    ["service", "group", "topic", "outcome"],
)
