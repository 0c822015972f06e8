"""The charger: provider work (charges, automatic refunds) outside any consumer transaction.

The work is the ``charges`` queue (waybill.common.queue, ADR 0009); the charger is its
handler. A new payment's job is enqueued *claimed* in the transaction that creates the payment
and handed to this process's worker right after that commit (low latency: no NOTIFY, no claim
round trip), with what that transaction already knew (``Claimed``), so the first load is
skipped; a job claimed from the queue (work that appeared elsewhere, a lease that lapsed
because the process holding it died, a retry) is loaded. Each job: load -> ask the provider ->
record the outcome (lock -> load -> decide -> append). A payment that cannot reach the provider
(retries exhausted, breaker open) is *postponed*: the job is due again after the gateway's
reschedule delay (the queue's backoff), and stays pending meanwhile.

What the charger loads only says *which* provider call to make (the amount, currency and
method never change after creation); whether and how the answer changes the payment is decided
again under the row lock when it is recorded. So news that lands between the load and the
record -- the order cancelled, a webhook -- is never lost: a capture recorded on a closed order
leaves a refund due, and the charger goes on to it. When the record leaves no provider work, its
transaction has also marked the job done, so the payment is finished with no further write.
News that makes provider work due *after* that commit (the order cancelled once captured)
enqueues a new job in the transaction that records it.

Whatever happens twice -- a lapsed lease on a slow charge, a charge after a crash, a
redelivered event -- reaches the provider with the same Idempotency-Key (the payment id), so it
charges once.
"""

from __future__ import annotations

import uuid

import structlog

from waybill.common.eventstore import Caller
from waybill.common.queue import Job, JobQueue, Outcome, QueueSpec, QueueWorker, RetryLater
from waybill.payments.domain import payment as p
from waybill.payments.gateway import (
    CardDeclined,
    ProviderGateway,
    ProviderRejected,
    ProviderUnavailable,
)
from waybill.payments.handlers import Claimed, PaymentHandlers, Recorded
from waybill.payments.intents import command_for

log = structlog.get_logger(__name__)
QUEUE = "charges"


class GatewayBackoff:
    """The queue's backoff for charges: the gateway's reschedule delay for a payment that could
    not reach the provider (``attempt`` 1 = the first attempt failed)."""

    def __init__(self, gateway: ProviderGateway) -> None:
        self.gateway = gateway

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        return self.gateway.policy.reschedule_s(attempt - 1, retry_after_s)


def charges_spec(gateway: ProviderGateway, *, lease_s: float) -> QueueSpec:
    """The ``charges`` queue's rules: unkeyed (a payment's work is one job at a time by
    construction), retried until the provider answers, the gateway's reschedule delays."""
    return QueueSpec(name=QUEUE, lease_s=lease_s, backoff=GatewayBackoff(gateway))


class Charger:
    def __init__(
        self,
        handlers: PaymentHandlers,
        gateway: ProviderGateway,
        *,
        dsn: str,
        service: str,
        concurrency: int = 16,
        poll_s: float = 2.0,
    ) -> None:
        self.handlers = handlers
        self.gateway = gateway
        self.queue: JobQueue = handlers.charges
        self.worker = QueueWorker(
            self.queue,
            self.run_job,
            dsn=dsn,
            service=service,
            concurrency=concurrency,
            poll_s=poll_s,
        )
        self._known: dict[int, Claimed] = {}  # jobs handed over with their creator's state

    def submit(self, payment_id: str, claimed: Claimed | None = None) -> None:
        """After a commit that made provider work for ``payment_id``: run its claimed job now
        (``claimed.job``), else wake the worker (the transaction enqueued a job)."""
        if claimed is not None and claimed.job is not None:
            self._known[claimed.job.id] = claimed
            self.worker.submit(claimed.job)
        else:
            self.worker.wakeup.wake()

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        self._known.clear()

    async def run_job(self, job: Job) -> Outcome | None:
        """The queue's handler: the provider work the payment needs now."""
        payment_id = str(job.payload["payment_id"])
        with structlog.contextvars.bound_contextvars(payment_id=payment_id):
            claimed = self._known.pop(job.id, None)
            return await self.advance(payment_id, job, claimed)

    async def advance(
        self, payment_id: str, job: Job, claimed: Claimed | None = None
    ) -> Outcome | None:
        """Do the provider work the payment needs now, until none is left or it must wait."""
        if claimed is None:
            claimed = await self.handlers.load_claimed(payment_id)
        while claimed is not None:
            step = p.next_step(claimed.state)
            if step is None:
                return None  # nothing (left) to do: the worker marks the job done
            recorded = await (
                self._charge(claimed, job)
                if step is p.NextStep.charge
                else self._refund(claimed, job)
            )
            if recorded is None or not recorded.events:
                return None  # someone else recorded the news (and enqueued what follows)
            if p.next_step(recorded.after) is None:
                return Outcome.completed_in_transaction  # that transaction marked the job done
            claimed = await self.handlers.load_claimed(payment_id)  # e.g. a refund became due
        return None

    # --- internals ------------------------------------------------------------------------

    async def _charge(self, claimed: Claimed, job: Job) -> Recorded | None:
        """Charge once; what was recorded (RetryLater when the payment must wait)."""
        state = claimed.state
        try:
            intent = await self.gateway.create_intent(
                idempotency_key=state.payment_id,
                amount_cents=state.amount_cents,
                currency=state.currency,
                payment_method=state.payment_method,
                metadata={
                    "payment_id": state.payment_id,
                    "order_id": state.order_id,
                    "tenant_id": claimed.tenant_id,
                },
            )
        except CardDeclined as exc:
            command: p.Command | None = p.Fail(code=exc.code, reason=exc.message)
        except ProviderRejected as exc:
            if exc.is_configuration:
                log.error("payment_charge_misconfigured", status=exc.status, code=exc.code)
                raise self._postpone(job, None) from exc
            command = p.Fail(code=exc.code, reason=exc.message)
        except ProviderUnavailable as exc:
            raise self._postpone(job, exc.retry_after_s, reason=exc.reason) from exc
        else:
            command = command_for(intent)
        if command is None:
            # An intent status we cannot act on: ask again once a lease has passed.
            raise RetryLater("provider gave no decision", delay_s=self.queue.spec.lease_s)
        return await self.handlers.record(self._caller(claimed), state.payment_id, command, job)

    async def _refund(self, claimed: Claimed, job: Job) -> Recorded | None:
        """Refund what is left of a closed order's payment; what was recorded (RetryLater when
        the payment must wait), None when an operator must step in."""
        state = claimed.state
        assert state.provider_payment_id is not None  # captured payments have one
        try:
            refund = await self.gateway.create_refund(
                idempotency_key=p.refund_idempotency_key(state),
                intent_id=state.provider_payment_id,
                amount_cents=state.refundable_cents,
            )
        except ProviderUnavailable as exc:
            raise self._postpone(job, exc.retry_after_s, reason=exc.reason) from exc
        except ProviderRejected as exc:
            # E.g. refunded outside Waybill: nothing we can settle automatically (job done).
            log.error("payment_auto_refund_rejected", code=exc.code, message=exc.message)
            return None
        command = p.Refund(refund_id=refund.id, amount_cents=refund.amount, reason="order_closed")
        return await self.handlers.record(self._caller(claimed), state.payment_id, command, job)

    def _postpone(
        self, job: Job, retry_after_s: float | None, *, reason: str = "misconfigured"
    ) -> RetryLater:
        """The provider could not be reached: the job is due again after the gateway's
        reschedule delay (the payment stays pending)."""
        delay = self.queue.spec.backoff.delay(job.attempts, retry_after_s)
        log.warning(
            "payment_provider_work_postponed",
            payment_id=job.payload["payment_id"],
            reason=reason,
            attempts=job.attempts,
            retry_in_s=round(delay, 3),
        )
        return RetryLater(reason, delay_s=delay)

    @staticmethod
    def _caller(claimed: Claimed) -> Caller:
        # The saga's correlation id continues from the event that created the payment; the
        # events are in this job's run span (the queue's), a child of that event's consumer.
        return Caller(
            tenant_id=claimed.tenant_id,
            correlation_id=claimed.correlation_id or f"charger-{uuid.uuid4()}",
            causation_id=claimed.causation_id,
        )
