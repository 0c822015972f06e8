"""Prometheus metrics of the work queues (per service and queue)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

QUEUE_DEPTH = Gauge(
    "waybill_queue_depth", "Jobs waiting (queued or with a lapsed lease).", ["service", "queue"]
)
QUEUE_RUNNING = Gauge(
    "waybill_queue_running", "Jobs running under a live lease.", ["service", "queue"]
)
QUEUE_FAILED = Gauge(
    "waybill_queue_failed", "Jobs given up on (kept for the admin view).", ["service", "queue"]
)
QUEUE_OLDEST_WAITING = Gauge(
    "waybill_queue_oldest_waiting_seconds",
    "How long the oldest due job has been waiting.",
    ["service", "queue"],
)
QUEUE_JOBS_FINISHED = Counter(
    "waybill_queue_jobs_finished_total",
    "Attempts finished by this process, by outcome (done, retry, failed, lost).",
    ["service", "queue", "outcome"],
)
