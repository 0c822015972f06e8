"""Prometheus metrics shared by every Waybill service: each name is defined here, once.

Metric objects live in the default registry (that is how prometheus-client is meant to be
used: one registry per process, scraped at ``GET /metrics``). Every metric carries a
``service`` label so a dashboard can put the services side by side.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# Latency buckets sized for an API backed by PostgreSQL: 5 ms to 10 s.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUEST_DURATION = Histogram(
    "waybill_http_request_duration_seconds",
    "HTTP request latency by route template and status.",
    ["service", "method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
EVENTS_APPENDED = Counter(
    "waybill_events_appended_total",
    "Events appended to the event store.",
    ["service", "stream_type"],
)
OUTBOX_BACKLOG = Gauge(
    "waybill_outbox_backlog",
    "Outbox rows not yet published.",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "waybill_consumer_lag",
    "Records behind the partition end, per consumer group and topic.",
    ["service", "group", "topic"],
)
HANDLER_DURATION = Histogram(
    "waybill_event_handler_duration_seconds",
    "Time to handle one event (or one batch) in a consumer.",
    ["service", "group", "event_type"],
    buckets=HTTP_BUCKETS,
)
HANDLER_RETRIES = Counter(
    "waybill_event_handler_retries_total",
    "Retries of transient handler failures.",
    ["service", "group", "failure_type"],
)
DEAD_LETTERS = Counter(
    "waybill_dead_letters_total",
    "Records sent to the dead-letter topic.",
    ["service", "group", "failure_type"],
)
BREAKER_STATE = Gauge(
    "waybill_circuit_breaker_state",
    "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
    ["service", "dependency"],
)
DB_SLOW_QUERIES = Counter(
    "waybill_db_slow_queries_total",
    "Database statements slower than WAYBILL_SLOW_QUERY_MS (each also logged as db_query_slow).",
    ["service"],
)


def render_latest() -> tuple[bytes, str]:
    """The default registry in Prometheus text format, with its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
