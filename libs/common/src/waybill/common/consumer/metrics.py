"""Metrics of the consumer runtime.

Handler time, retries, dead letters and lag are shared families, defined once in
``waybill.common.observability.metrics``; this module adds the per-outcome record count and the
time of the inbox check (the one statement that tells a redelivery from a first delivery: the
duplicate detection time, per batch statement when records are applied in a batch; timed in
``consumer.inbox``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import Counter, Histogram

from waybill.common.observability.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    HANDLER_DURATION,
    HANDLER_RETRIES,
)

__all__ = [
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "HANDLER_DURATION",
    "HANDLER_RETRIES",
    "INBOX_CHECK_DURATION",
    "RECORDS",
    "inbox_check",
]

RECORDS = Counter(
    "waybill_consumer_records_total",
    "Records consumed, by outcome: applied, duplicate, skipped (unknown type), dead_lettered.",
    ["service", "group", "topic", "outcome"],
)
# From 100 us (a loopback PostgreSQL) to 1 s; 2 ms is a bound, so "under 2 ms" is readable.
INBOX_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
INBOX_CHECK_DURATION = Histogram(
    "waybill_consumer_inbox_check_duration_seconds",
    "Time of one inbox statement (is this event new for the group?): duplicate detection.",
    ["service", "group"],
    buckets=INBOX_BUCKETS,
)


@contextmanager
def inbox_check(service: str, group: str) -> Iterator[None]:
    """Time the inbox statement run inside the block (failed ones too)."""
    started = perf_counter()
    try:
        yield
    finally:
        INBOX_CHECK_DURATION.labels(service, group).observe(perf_counter() - started)
