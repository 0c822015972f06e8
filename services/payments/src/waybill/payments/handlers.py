"""Application layer: load the stream -> decide -> append (+ projection, outbox) atomically.

Writers of one payment are serialised by locking its ``payments`` row (``FOR UPDATE``) before
loading the stream, so the charger, a webhook and the sync job settling the same payment queue
up instead of failing on a version conflict; ``retry_on_conflict`` stays as the safety net.
No provider call ever happens inside these transactions (see ``charger``): the provider work
a payment needs is a ``charges`` job (waybill.common.queue), enqueued in the transaction that
made it necessary and completed in the one that records its outcome.

Every statement lives in ``repository`` (the per-order path's as plain driver statements,
ADR 0007); this module decides which to run, in which transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.contracts.orders import OrderPlaced
from waybill.common.contracts.payments import PaymentEvent
from waybill.common.eventstore import (
    Caller,
    EventStore,
    RecordedEvent,
    append_decided,
    retry_on_conflict,
)
from waybill.common.keyset import Position
from waybill.common.queue import Job, JobQueue
from waybill.payments import repository
from waybill.payments.domain import payment as p
from waybill.payments.domain.errors import PaymentNotFound
from waybill.payments.views import PaymentView

log = structlog.get_logger(__name__)
STREAM_TYPE = "payment"


@dataclass(frozen=True)
class Recorded:
    """A command's effect on one payment."""

    tenant_id: str
    before: p.Payment
    after: p.Payment
    events: list[PaymentEvent]

    @property
    def newly_needs_provider(self) -> bool:
        """The payment just acquired provider work (e.g. captured after its order closed)."""
        return p.next_step(self.after) is not None and p.next_step(self.before) is None


@dataclass(frozen=True)
class Claimed:
    """What the charger needs to do a payment's provider work; ``job``: the charges job it
    runs under, when the transaction that made the work also enqueued it (claimed by us).
    ``attempts`` is 0 here: failed attempts are counted by the job (``Job.attempts``)."""

    tenant_id: str
    state: p.Payment
    attempts: int
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    job: Job | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Origin:
    """The saga ids of a payment's first event."""

    correlation_id: str | None
    traceparent: str | None


@dataclass
class PaymentHandlers:
    engine: AsyncEngine
    store: EventStore  # built with the registry of every payment event (typed, upcast loads)
    charges: JobQueue
    provider: str = "sandbox"
    # Claim a new payment's charges job for this process's charger (run right after the
    # commit), or leave it queued for any worker (a process without the workers role).
    charge_locally: bool = True
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- from order events (called inside the consumer's inbox transaction) --------------

    async def open_payment(
        self, conn: AsyncConnection, caller: Caller, order: OrderPlaced
    ) -> Claimed | None:
        """Create the order's one payment; if created now, what the charger needs to charge
        it (what ``load_claimed`` would read back after the commit), else None.

        Its charges job is enqueued claimed by this process: it charges the payment right
        after the commit; should it die first, any worker claims the job once the lease lapses.
        """
        payment_id = p.payment_id_for(caller.tenant_id, order.order_id)
        state = p.Payment(payment_id=payment_id)
        events = p.decide(
            state,
            p.CreatePayment(
                payment_id=payment_id,
                order_id=order.order_id,
                amount_cents=order.total_cents,
                currency=order.currency,
                payment_method=order.payment_method,
                provider=self.provider,
            ),
        )
        after = _fold(state, events)
        if not await repository.insert_payment(conn, caller.tenant_id, after, self.clock()):
            return None  # order.placed again (redelivery, replay): the payment exists
        recorded = await self._append(conn, caller, payment_id, 0, events)
        job = await self.charges.enqueue(
            conn,
            key=payment_id,
            payload={"payment_id": payment_id},
            tenant_id=caller.tenant_id,
            claim=self.charge_locally,
        )
        log.info("payment_create_succeeded", payment_id=payment_id, order_id=order.order_id)
        return Claimed(
            tenant_id=caller.tenant_id,
            state=after,
            attempts=0,
            correlation_id=caller.correlation_id,
            causation_id=str(recorded[0].event_id),
            traceparent=caller.traceparent,
            job=job if self.charge_locally else None,
        )

    async def close_order(
        self, conn: AsyncConnection, caller: Caller, order_id: str, reason: str
    ) -> Recorded | None:
        """Mark the order closed (cancelled/expired); None if it never had a payment."""
        payment_id = p.payment_id_for(caller.tenant_id, order_id)
        if not await repository.lock_payment(conn, caller.tenant_id, payment_id):
            return None
        return await self._decide_and_append(conn, caller, payment_id, p.CloseOrder(reason))

    # --- provider outcomes, refunds ---------------------------------------------------------

    async def record(
        self, caller: Caller, payment_id: str, command: p.Command, job: Job | None = None
    ) -> Recorded:
        """Apply ``command`` in its own transaction (bounded retry on a version conflict);
        ``job``: the charges job whose outcome this is (done here if no work is left)."""

        async def attempt() -> Recorded:
            async with self.engine.begin() as conn:
                return await self.record_in(conn, caller, payment_id, command, job)

        return await retry_on_conflict(attempt)

    async def record_in(
        self,
        conn: AsyncConnection,
        caller: Caller,
        payment_id: str,
        command: p.Command,
        job: Job | None = None,
    ) -> Recorded:
        if not await repository.lock_payment(conn, caller.tenant_id, payment_id):
            raise PaymentNotFound(f"payment {payment_id} not found")
        return await self._decide_and_append(conn, caller, payment_id, command, job)

    async def _decide_and_append(
        self,
        conn: AsyncConnection,
        caller: Caller,
        payment_id: str,
        command: p.Command,
        job: Job | None = None,
    ) -> Recorded:
        before = await self.load_in(conn, payment_id)
        events = p.decide(before, command)
        after = _fold(before, events)
        if not events:
            if before.status in p.SETTLED and not isinstance(command, p.CloseOrder):
                log.info(
                    "payment_news_ignored",
                    payment_id=payment_id,
                    status=before.status.value,
                    command=type(command).__name__,
                )
            return Recorded(caller.tenant_id, before, after, [])
        await self._append(conn, caller, payment_id, before.version, events)
        recorded = Recorded(caller.tenant_id, before, after, events)
        await repository.update_payment(conn, after, self.clock())
        # The charges job: done with this outcome when no provider work is left (the charger
        # relies on it: it writes nothing more for a payment this transaction settled); a new
        # one when work just appeared (its NOTIFY wakes a worker at commit); else whoever runs
        # the current job goes on with it.
        if job is not None and p.next_step(after) is None:
            await self.charges.complete_in(conn, job)
        if recorded.newly_needs_provider:
            await self.charges.enqueue(
                conn, key=payment_id, payload={"payment_id": payment_id}, tenant_id=caller.tenant_id
            )
        for event in events:
            log.info(
                "payment_event_recorded",
                payment_id=payment_id,
                event_type=event.event_type,
                status=after.status.value,
            )
        return recorded

    # --- the charger's reads ---------------------------------------------------------------

    async def load_claimed(self, payment_id: str) -> Claimed | None:
        async with self.engine.connect() as conn:
            tenant_id = await repository.tenant_of(conn, payment_id)
            if tenant_id is None:
                return None
            recorded = await self.store.load(conn, payment_id)
        events = [r.typed() for r in recorded]
        origin = recorded[0].metadata if recorded else {}
        return Claimed(
            tenant_id=tenant_id,
            state=p.fold(payment_id, events),  # type: ignore[arg-type]
            attempts=0,
            correlation_id=origin.get("correlation_id"),
            causation_id=str(recorded[0].event_id) if recorded else None,
            traceparent=origin.get("traceparent"),
        )

    async def origin_in(self, conn: AsyncConnection, payment_id: str) -> Origin:
        """The ids the payment was opened with: news about it from outside (a provider webhook,
        the payment sync) continues the saga's correlation id and trace."""
        recorded = await self.store.load(conn, payment_id, limit=1)
        origin = recorded[0].metadata if recorded else {}
        return Origin(origin.get("correlation_id"), origin.get("traceparent"))

    # --- reads ----------------------------------------------------------------------------

    async def load_in(self, conn: AsyncConnection, payment_id: str) -> p.Payment:
        recorded = await self.store.load(conn, payment_id)
        events = [r.typed() for r in recorded]
        return p.fold(payment_id, events)  # type: ignore[arg-type]

    async def processing_since(
        self, before: datetime, *, tenant_id: str | None, limit: int
    ) -> list[tuple[str, str, str | None]]:
        """(payment id, tenant, provider payment id) of payments processing since ``before``."""
        async with self.engine.connect() as conn:
            return await repository.processing_since(conn, before, tenant_id=tenant_id, limit=limit)

    async def get_payment(self, tenant_id: str, payment_id: str) -> PaymentView:
        async with self.engine.connect() as conn:
            row = await repository.payment_row(conn, tenant_id, payment_id)
        if row is None:
            raise PaymentNotFound(f"payment {payment_id} not found")
        return PaymentView.from_row(row)

    async def list_payments(
        self, tenant_id: str, *, order_id: str | None, limit: int, after: Position | None
    ) -> tuple[list[PaymentView], Position | None]:
        """Newest first, one keyset page at a time."""
        rows, last = await repository.payments_page(
            self.engine, tenant_id, order_id=order_id, limit=limit, after=after
        )
        return [PaymentView.from_row(r) for r in rows], last

    # --- internals ------------------------------------------------------------------------

    async def _append(
        self,
        conn: AsyncConnection,
        caller: Caller,
        payment_id: str,
        expected_version: int,
        events: list[PaymentEvent],
    ) -> list[RecordedEvent]:
        return await append_decided(
            self.store,
            conn,
            caller,
            stream_id=payment_id,
            stream_type=STREAM_TYPE,
            expected_version=expected_version,
            events=events,
        )


def _fold(state: p.Payment, events: list[PaymentEvent]) -> p.Payment:
    for event in events:
        state = p.evolve(state, event)
    return state
