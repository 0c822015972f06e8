"""One work queue on PostgreSQL for work that leaves the system (ADR 0009): leases with
``FOR UPDATE SKIP LOCKED``, attempts, ``run_at``, priority with aging, per-key serial
processing, per-key rate limits, fairness between keys, and an after-commit wake-up."""

from waybill.common.queue.schema import QUEUE_CHANNEL, define_queue_tables
from waybill.common.queue.spec import (
    DEFAULT_BACKOFF,
    GiveUp,
    Job,
    Outcome,
    QueueSpec,
    RetryDelay,
    RetryLater,
)
from waybill.common.queue.store import (
    JobQueue,
    JobSummary,
    NewJob,
    QueueStats,
    queue_stats,
    recent_jobs,
)
from waybill.common.queue.worker import QueueWorker

__all__ = [
    "DEFAULT_BACKOFF",
    "QUEUE_CHANNEL",
    "GiveUp",
    "Job",
    "JobQueue",
    "JobSummary",
    "NewJob",
    "Outcome",
    "QueueSpec",
    "QueueStats",
    "QueueWorker",
    "RetryDelay",
    "RetryLater",
    "define_queue_tables",
    "queue_stats",
    "recent_jobs",
]
