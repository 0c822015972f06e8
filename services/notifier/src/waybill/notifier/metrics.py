"""Prometheus metrics of the notifier's webhook deliveries (one definition each).

Attempts by error class (``ok`` for a 2xx) and their latency; final outcomes per message; and
the waits that are not attempts (an endpoint's own slots busy, its rate limit, its open
breaker), so a dashboard shows throttling and circuit breaking apart from failures.

Every attempt is also a call of the kit's third-party log (``waybill_integration_*``): webhook
attempts are reported there from the same point as ``WEBHOOK_ATTEMPTS``, customer emails and
SMS by their channels.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SERVICE = "notifier"
# The notifier's integrations, by their names in the third-party calls view.
WEBHOOKS = "webhooks"
SMS_PROVIDER = "sms_provider"
SMTP = "smtp"

WEBHOOK_ATTEMPTS = Counter(
    "waybill_webhook_attempts_total",
    "Webhook delivery attempts, by error class (ok: a 2xx).",
    ["error_class"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "waybill_webhook_attempt_duration_seconds",
    "Time from sending a webhook to its answer (or failure).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WEBHOOK_MESSAGES = Counter(
    "waybill_webhook_messages_total",
    "Webhook messages settled, by final outcome (succeeded, failed).",
    ["outcome"],
)
WEBHOOK_WAITS = Counter(
    "waybill_webhook_waits_total",
    "Deliveries put back without an attempt, by reason (busy, rate_limited, circuit_open).",
    ["reason"],
)
