"""How long an idle queue worker sleeps: until the next job is due, never past ``poll_s``, and
not at all when a job came due while the claim was looking (the case that made a 1 s retry
wait the whole poll interval)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from waybill.common.queue import JobQueue, QueueSpec, QueueWorker


def _worker(poll_s: float = 5.0) -> QueueWorker:
    queue = JobQueue(None, QueueSpec(name="q"))  # type: ignore[arg-type]  # no database needed
    return QueueWorker(
        queue, lambda job: None, dsn="postgresql://unused", service="t", poll_s=poll_s
    )  # type: ignore[arg-type,return-value]


def test_an_empty_queue_sleeps_the_poll_interval():
    assert _worker().idle_s(None, datetime.now(UTC)) == 5.0


def test_a_job_due_later_is_slept_for_but_never_past_the_poll_interval():
    now = datetime.now(UTC)
    assert 0.5 < _worker().idle_s(now + timedelta(seconds=1), now) <= 1.0
    assert _worker().idle_s(now + timedelta(seconds=60), now) == 5.0


def test_a_job_that_came_due_while_the_claim_looked_is_claimed_at_once():
    looked_at = datetime.now(UTC) - timedelta(milliseconds=5)
    due = looked_at + timedelta(milliseconds=1)  # due after the claim began, before now
    assert _worker().idle_s(due, looked_at) == 0.0


def test_a_job_due_before_the_claim_but_not_claimable_waits_for_a_wake_up():
    # Due before the claim looked and still not claimed: its key is busy or every slot is
    # taken; a finishing job wakes the loop, so it need not spin.
    now = datetime.now(UTC)
    assert _worker().idle_s(now - timedelta(seconds=1), now) == 5.0
