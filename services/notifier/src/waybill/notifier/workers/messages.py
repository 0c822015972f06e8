"""Sending customer notifications: the ``emails`` and ``sms`` queues' common part.

Two queues, not one: an SMTP outage then fills only the emails queue's slots, and the admin
view shows each channel's depth and failures. Both are unkeyed, with the notification's
priority (urgent 3 .. low 0), its ``send_at`` as the job's ``run_at``, and aging
(``WAYBILL_NOTIFIER_AGING_S``: one level up per period waited).

A job's handler loads the notification, renders it, hands it to the channel (``Channel.send``)
and records the outcome in one transaction with the job's completion:

- sent -> ``sent`` + ``notification.sent``;
- temporary (SMTP 4xx, SMS 429/5xx, timeouts, refused connections) -> retried with the queue's
  backoff (a 429's ``Retry-After`` honoured) until ``WAYBILL_NOTIFIER_MESSAGE_ATTEMPTS``;
- permanent (SMTP 5xx, SMS 4xx) or out of attempts -> ``failed`` + ``notification.failed``, and
  a failed email falls back to an SMS of the same template when the customer has a phone.

A breaker per channel (``emails``, ``sms``) opens after ``WAYBILL_NOTIFIER_BREAKER_FAILURES``
sends in a row that found the server unreachable; while it is open, messages wait (no attempt
spent) and one probe per reset tells when the server is back.

Attempts are counted when an outcome is recorded, not when a job is claimed: a notifier killed
between the SMTP server's acceptance and our commit spends no attempt, and the job, claimed
again after its lease, sends the same message again with the same ``Message-ID``.

Each final outcome is the one event of the notification's own stream (``ntf_...``, version 1):
notifications of one order are sent concurrently on two channels, and a stream per order
would make them conflict on its version for no reader's benefit (every event carries the
order id); and expected version 0 means a notification can never report twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.backoff import Backoff, Jitter
from waybill.common.breaker import BreakerOpen, CircuitBreakers
from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.notifier import NotificationFailed, NotificationSent
from waybill.common.eventstore import Caller, EventStore, append_decided
from waybill.common.queue import Job, JobQueue, Outcome, QueueSpec, RetryLater
from waybill.notifier import customer_repository as db
from waybill.notifier.customers import CustomerNotifications

log = structlog.get_logger(__name__)

EMAILS = "emails"
SMS = "sms"


def message_queue(
    engine: AsyncEngine,
    name: str,
    *,
    timeout_s: float,
    aging_s: float,
    backoff_s: float,
    backoff_max_s: float,
) -> JobQueue:
    return JobQueue(
        engine,
        QueueSpec(
            name=name,
            lease_s=timeout_s + 10,
            aging_s=aging_s,
            # The handler owns the attempt budget (see the module docstring).
            max_attempts=None,
            # Equal jitter: at least half the ceiling, so a server that said "try later" is
            # not asked again at once.
            backoff=Backoff(base_s=backoff_s, max_s=backoff_max_s, jitter=Jitter.EQUAL),
        ),
    )


@dataclass(frozen=True)
class Delivered:
    """The channel took the message."""


@dataclass(frozen=True)
class Refused:
    """The channel did not take it: ``permanent`` never will; else try again later."""

    reason: str
    permanent: bool = False
    retry_after_s: float | None = None
    # The server itself is down or drowning (no connection, a timeout, SMS 5xx, SMTP 421): the
    # channel's breaker counts these, not one mailbox's refusal.
    unreachable: bool = False


class _Unreachable(Exception):  # a signal to the breaker, not an error
    def __init__(self, refused: Refused) -> None:
        self.refused = refused


class Channel(Protocol):
    async def send(self, notification: Any) -> Delivered | Refused: ...


@dataclass
class MessageSender:
    queue: JobQueue
    channel: Channel
    store: EventStore
    customers: CustomerNotifications
    max_attempts: int = 3
    # One breaker per channel (key: the queue's name): while the SMTP relay or the SMS
    # provider is down, messages wait without spending attempts instead of each failing.
    breakers: CircuitBreakers | None = None

    async def handle(self, job: Job) -> Outcome:
        notification_id: str = job.payload["notification_id"]
        async with self.queue.engine.connect() as conn:
            row = await db.notification(conn, notification_id)
        if row is None or row.status != "queued":
            async with self.queue.engine.begin() as conn:
                await self.queue.complete_in(conn, job)
            return Outcome.completed_in_transaction
        with structlog.contextvars.bound_contextvars(
            notification_id=notification_id, order_id=row.order_id, channel=row.channel
        ):
            result = await self._send(row)
            return await self._record(job, notification_id, result)

    async def _send(self, row: Any) -> Delivered | Refused:
        if self.breakers is None:
            return await self.channel.send(row)
        try:
            async with await self.breakers.guard(self.queue.name):
                result = await self.channel.send(row)
                if isinstance(result, Refused) and result.unreachable:
                    raise _Unreachable(result)
        except _Unreachable as unreachable:
            return unreachable.refused
        except BreakerOpen as exc:
            delay = self.breakers.reset_s * random.uniform(1, 1.2)
            raise RetryLater(f"{self.queue.name} circuit open", delay_s=delay) from exc
        return result

    async def _record(self, job: Job, notification_id: str, result: Delivered | Refused) -> Outcome:
        now = datetime.now(UTC)
        async with self.queue.engine.begin() as conn:
            row = await db.notification(conn, notification_id, lock=True)
            if row is None or row.status != "queued":  # another claim recorded it first
                await self.queue.complete_in(conn, job)
                return Outcome.completed_in_transaction
            attempts = row.attempts + 1
            if isinstance(result, Delivered):
                await db.update_notification(
                    conn,
                    notification_id,
                    {"status": "sent", "attempts": attempts, "sent_at": now, "last_error": None},
                )
                await self._report(conn, row, NotificationSent(**_about(row)))
                await self.queue.complete_in(conn, job)
                log.info("notification_send_succeeded", attempts=attempts)
                return Outcome.completed_in_transaction
            if result.permanent or attempts >= self.max_attempts:
                await self._fail(conn, job, row, attempts, result.reason)
                return Outcome.completed_in_transaction
            await db.update_notification(
                conn, notification_id, {"attempts": attempts, "last_error": result.reason}
            )
        log.info("notification_send_retried", attempts=attempts, reason=result.reason)
        raise RetryLater(result.reason, retry_after_s=result.retry_after_s)

    async def _fail(
        self, conn: AsyncConnection, job: Job, row: Any, attempts: int, reason: str
    ) -> None:
        await db.update_notification(
            conn,
            row.notification_id,
            {"status": "failed", "attempts": attempts, "last_error": reason},
        )
        await self._report(conn, row, NotificationFailed(**_about(row), reason=reason[:500]))
        await self.queue.fail_in(conn, job, reason[:500])
        fallbacks = 0
        if row.channel == "email":
            fallbacks = await self.customers.fall_back_to_sms(conn, row)
        log.warning(
            "notification_send_failed", attempts=attempts, reason=reason, sms_fallbacks=fallbacks
        )

    async def _report(self, conn: AsyncConnection, row: Any, event: DomainEvent) -> None:
        await append_decided(
            self.store,
            conn,
            Caller(tenant_id=row.tenant_id, correlation_id=row.order_id),
            stream_id=row.notification_id,
            stream_type="notification",
            expected_version=0,
            events=[event],
        )


def _about(row: Any) -> dict[str, str]:
    return {
        "notification_id": row.notification_id,
        "order_id": row.order_id,
        "channel": row.channel,
        "template": row.template,
    }
