"""What a queue is (its spec), what a worker hands a handler (a job), and how a handler says
"again later" or "never" (``RetryLater``, ``GiveUp``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from waybill.common.backoff import Backoff


class RetryDelay(Protocol):
    """What a queue asks its retry policy (``waybill.common.backoff.Backoff`` is one):
    seconds before attempt ``attempt + 1`` of a job whose attempt ``attempt`` failed; at
    least ``retry_after_s`` when the dependency said so (e.g. a 429's ``Retry-After``)."""

    def delay(self, attempt: int, retry_after_s: float | None) -> float: ...


DEFAULT_BACKOFF: RetryDelay = Backoff(base_s=1.0, max_s=300.0)


@dataclass(frozen=True)
class QueueSpec:
    """One queue's rules.

    ``keyed``: jobs of one ``key`` are claimed one per claim round, keys served round-robin
    (least recently served first), so one busy key cannot starve the rest. ``serial``: at most
    one running job per key (implies keyed). ``ordered``: a key's jobs run one at a time in
    the order they were enqueued, a job waiting for its retry holding back the later ones
    (implies serial); priority and aging then order keys, not the jobs of one key.
    ``rate_per_key_s``: at most one start per key per this many seconds (implies keyed).
    ``aging_s``: a job due for that long counts one priority higher, two after twice as long,
    ... ``max_attempts``: None retries until ``deadline`` (if the job has one) or forever.
    ``retention_s``: how long finished jobs stay for the admin view.
    """

    name: str
    lease_s: float = 60.0
    serial: bool = False
    ordered: bool = False
    rate_per_key_s: float | None = None
    fair: bool = False
    aging_s: float | None = None
    max_attempts: int | None = None
    retention_s: float = 3600.0
    backoff: RetryDelay = field(default=DEFAULT_BACKOFF, compare=False)

    def __post_init__(self) -> None:
        if self.ordered and not self.serial:
            object.__setattr__(self, "serial", True)

    @property
    def keyed(self) -> bool:
        return self.serial or self.fair or self.rate_per_key_s is not None


@dataclass(frozen=True)
class Job:
    """A claimed job: ``attempts`` counts this attempt and is the claim's token.
    ``traceparent``: the span that enqueued it; the worker's run continues that trace."""

    id: int
    queue: str
    key: str
    tenant_id: str | None
    payload: dict[str, Any]
    attempts: int
    priority: int
    enqueued_at: datetime
    deadline: datetime | None
    traceparent: str | None = None


class RetryLater(Exception):  # a signal to the worker, not an error
    """Raised by a handler: try this job again after the queue's backoff (at least
    ``retry_after_s``), or after exactly ``delay_s`` when given."""

    def __init__(
        self, reason: str, *, retry_after_s: float | None = None, delay_s: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.delay_s = delay_s


class GiveUp(Exception):  # a signal to the worker, not an error
    """Raised by a handler: the job can never succeed; mark it ``failed`` now."""


class Outcome(enum.Enum):
    """What a handler may return instead of None (None: the worker marks the job done)."""

    # The handler marked the job done in the transaction that recorded its effect
    # (``JobQueue.complete_in``): the worker has nothing left to write.
    completed_in_transaction = "completed_in_transaction"
