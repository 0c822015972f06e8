"""Prometheus metrics of the periodic jobs (per service and job)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOB_LAST_RUN = Gauge(
    "waybill_periodic_job_last_run_timestamp_seconds",
    "When the job last finished a run (Unix time), in this process.",
    ["service", "job"],
)
JOB_LAST_DURATION = Gauge(
    "waybill_periodic_job_last_duration_seconds",
    "How long the job's last run took.",
    ["service", "job"],
)
JOB_RUNS = Counter(
    "waybill_periodic_job_runs_total",
    "Runs by outcome: succeeded, failed, or skipped (another replica leads).",
    ["service", "job", "outcome"],
)
