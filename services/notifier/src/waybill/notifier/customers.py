"""Customer notifications from consumed events: contacts, the notifications owed, and their
jobs, each written in the consumer's transaction (with the event's inbox row).

Contacts come from ``order.placed`` and ``order.paid`` v2 (v2 wins; a v1 event upcast with no
customer changes nothing) into ``order_contacts``. Shipment events carry only the order id,
and the orders and shipping topics are consumed independently, so a shipment event may come
before its order's contact. The consumer runtime would retry a retryable error about 3 s
(``waybill.common.backoff.DEFAULT_RETRY``) while holding the whole partition, then
dead-letter the record: a notification lost to a human's re-drive, and every other order on
the partition held up meanwhile. Instead the event is *parked* (``awaiting_contact``, its
data as consumed, the delivery code still sealed) and the transaction that records the
contact releases it into notifications. Both sides take one transaction-scoped advisory lock
per order first, so a park and a contact committed at the same time cannot miss each other:
whichever locks second sees the other's row.

One notification per (event, channel, recipient): the insert is ``ON CONFLICT DO NOTHING`` on
that unique key and only the rows it inserted get a job, so a redelivered or released event,
or a second fallback, makes nothing new. A job's payload is the notification id only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.event import DomainEvent
from waybill.common.contracts.orders import OrderPaid, OrderPlaced
from waybill.common.eventstore import Caller
from waybill.common.keyset import Position
from waybill.common.queue import JobQueue, NewJob
from waybill.notifier import customer_repository as db
from waybill.notifier.domain.messages import (
    NOTIFYING,
    RULES,
    Channel,
    Priority,
    Rule,
    context_of,
    rule_of,
)
from waybill.notifier.views import NotificationView

log = structlog.get_logger(__name__)

MODELS: Mapping[str, type[DomainEvent]] = {model.event_type: model for model in NOTIFYING}
MAIL_DOMAIN = "notifier.waybill.test"


@dataclass
class CustomerNotifications:
    engine: AsyncEngine
    emails: JobQueue
    sms: JobQueue
    # Seconds each template is held back (WAYBILL_NOTIFIER_TEMPLATE_DELAYS_S): its send_at.
    delays: Mapping[str, float] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- consumption -----------------------------------------------------------------------

    async def on_event(self, conn: AsyncConnection, caller: Caller, event: DomainEvent) -> None:
        """Record what ``event`` says about the customer's contact, then the notifications it
        owes (or park it until the contact is known)."""
        order_id: str = event.order_id  # type: ignore[attr-defined]
        tenant_id = caller.tenant_id
        await db.lock_order(conn, tenant_id, order_id)
        learned = await self._record_contact(conn, tenant_id, event)
        contact = await db.contact(conn, tenant_id, order_id)
        event_id = _event_id(caller)
        rule = rule_of(event)
        if contact is None:
            if rule is not None:
                await db.park(
                    conn,
                    {
                        "event_id": event_id,
                        "tenant_id": tenant_id,
                        "order_id": order_id,
                        "event_type": event.event_type,
                        "data": event.model_dump(mode="json"),
                        "correlation_id": caller.correlation_id,
                        "parked_at": self.clock(),
                    },
                )
                log.info("notification_contact_awaited", order_id=order_id, template=rule.template)
            return
        if rule is not None:
            await self._notify(
                conn, tenant_id, event_id, order_id, rule, context_of(event), contact
            )
        if learned:
            for parked in await db.take_parked(conn, tenant_id, order_id):
                waiting = MODELS[parked.event_type].model_validate(parked.data)
                parked_rule = rule_of(waiting)
                assert parked_rule is not None
                await self._notify(
                    conn,
                    tenant_id,
                    parked.event_id,
                    order_id,
                    parked_rule,
                    context_of(waiting),
                    contact,
                )
                log.info(
                    "notification_contact_released",
                    order_id=order_id,
                    event_id=str(parked.event_id),
                )

    async def _record_contact(
        self, conn: AsyncConnection, tenant_id: str, event: DomainEvent
    ) -> bool:
        """True if the event carried a contact (order.placed, order.paid v2)."""
        if isinstance(event, OrderPlaced | OrderPaid) and event.customer is not None:
            customer = event.customer
            await db.save_contact(
                conn,
                {
                    "tenant_id": tenant_id,
                    "order_id": event.order_id,
                    "customer_id": customer.id,
                    "email": customer.email,
                    "phone": customer.phone,
                    "source": event.event_type,
                    "updated_at": self.clock(),
                },
                overwrite=isinstance(event, OrderPaid),
            )
            return True
        return False

    # --- notifications and their jobs ------------------------------------------------------

    async def _notify(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        event_id: uuid.UUID,
        order_id: str,
        rule: Rule,
        context: dict[str, Any],
        contact: Any,
        channels: Sequence[Channel] | None = None,
        priority: Priority | None = None,
    ) -> int:
        now = self.clock()
        send_at = now + timedelta(seconds=self.delays.get(rule.template, 0.0))
        rows = []
        for channel in channels or rule.channels:
            recipient = contact.email if channel is Channel.email else contact.phone
            if not recipient:
                continue  # SMS only where the customer gave a phone
            notification_id = f"ntf_{uuid.uuid4().hex}"
            rows.append(
                {
                    "notification_id": notification_id,
                    "tenant_id": tenant_id,
                    "order_id": order_id,
                    "event_id": event_id,
                    "channel": channel.value,
                    "template": rule.template,
                    "recipient": recipient,
                    "status": "queued",
                    "priority": (priority or rule.priority).value,
                    "send_at": send_at,
                    "attempts": 0,
                    "message_id": f"<{notification_id}@{MAIL_DOMAIN}>"
                    if channel is Channel.email
                    else None,
                    "context": context,
                    "created_at": now,
                }
            )
        inserted = await db.insert_notifications(conn, rows)
        for queue, channel in ((self.emails, Channel.email), (self.sms, Channel.sms)):
            await queue.enqueue_many(
                conn,
                [
                    NewJob(
                        key=row.notification_id,
                        payload={"notification_id": row.notification_id},
                        tenant_id=tenant_id,
                        priority=Priority(row.priority).rank,
                        run_at=row.send_at,
                    )
                    for row in inserted
                    if row.channel == channel.value
                ],
            )
        if inserted:
            log.info(
                "notification_queue_succeeded",
                order_id=order_id,
                template=rule.template,
                channels=[row.channel for row in inserted],
            )
        return len(inserted)

    async def fall_back_to_sms(self, conn: AsyncConnection, failed: Any) -> int:
        """An email that failed for good: the same template by SMS, if the customer has a phone
        (and no SMS of this event went to that phone already: the unique key)."""
        contact = await db.contact(conn, failed.tenant_id, failed.order_id)
        if contact is None or not contact.phone:
            return 0
        return await self._notify(
            conn,
            failed.tenant_id,
            failed.event_id,
            failed.order_id,
            RULES[failed.template],
            dict(failed.context),
            contact,
            channels=(Channel.sms,),
            priority=Priority(failed.priority),
        )

    # --- reads -----------------------------------------------------------------------------

    async def list(
        self, tenant_id: str, order_id: str | None, *, limit: int, after: Position | None
    ) -> tuple[list[NotificationView], Position | None]:
        rows, last = await db.notifications_page(
            self.engine, tenant_id, order_id, limit=limit, after=after
        )
        return [NotificationView.from_row(r) for r in rows], last


def _event_id(caller: Caller) -> uuid.UUID:
    # The consumed event's id (Caller.from_envelope): the unique key's event.
    assert caller.causation_id is not None
    return uuid.UUID(caller.causation_id)
