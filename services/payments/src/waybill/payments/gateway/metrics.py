"""Provider call metrics (the breaker state gauge is shared: observability.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from waybill.common.observability.metrics import HTTP_BUCKETS

PROVIDER_CALLS = Counter(
    "waybill_provider_calls_total",
    "Provider HTTP attempts by operation and outcome (ok, declined, rejected, rate_limited, "
    "server_error, timeout, network, breaker_open).",
    ["service", "provider", "operation", "outcome"],
)
PROVIDER_CALL_DURATION = Histogram(
    "waybill_provider_call_duration_seconds",
    "Latency of one provider HTTP attempt.",
    ["service", "provider", "operation", "outcome"],
    buckets=HTTP_BUCKETS,
)
PROVIDER_RETRIES = Counter(
    "waybill_provider_retries_total",
    "Provider attempts retried, by reason.",
    ["service", "provider", "operation", "reason"],
)
