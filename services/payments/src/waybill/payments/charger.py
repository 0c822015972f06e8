"""The charger: provider work (charges, automatic refunds) outside any consumer transaction.

Payment ids arrive on an in-process queue right after the transaction that made them need the
provider has committed (low latency); a pool of worker tasks takes them one at a time:
load -> ask the provider -> record the outcome (lock -> load -> decide -> append). A new
payment arrives with what its creating transaction already knew (``Claimed``), so the first
load is skipped; the sweep's and the other callers' ids are loaded. A payment that cannot
reach the provider (retries exhausted, breaker open) is *postponed*: it stays pending with
``next_attempt_at`` pushed out, and the sweep queues it again when that time comes. The sweep
also recovers payments whose claim lapsed because the process that held it died.

What the charger loads only says *which* provider call to make (the amount, currency and
method never change after creation); whether and how the answer changes the payment is decided
again under the row lock when it is recorded. So news that lands between the load and the
record -- the order cancelled, a webhook -- is never lost: a capture recorded on a closed order
leaves a refund due, and the charger goes on to it. When the record leaves no provider work, its
transaction has already cleared ``next_attempt_at``, so the payment is done with no reload and
no release. News that makes provider work due *after* that commit (the order cancelled once
captured) claims the payment afresh and queues it; should that arrive while this worker still
holds the id (the queue takes an id once at a time), the sweep takes it when the claim lapses.

Whatever happens twice -- a sweep on two replicas, a charge after a crash, a redelivered
event -- reaches the provider with the same Idempotency-Key (the payment id), so it charges once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from waybill.common.eventstore import Caller
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


class Charger:
    def __init__(
        self,
        handlers: PaymentHandlers,
        gateway: ProviderGateway,
        *,
        concurrency: int = 16,
        sweep_interval_s: float = 2.0,
    ) -> None:
        self.handlers = handlers
        self.gateway = gateway
        self.concurrency = concurrency
        self.sweep_interval_s = sweep_interval_s
        self._queue: asyncio.Queue[tuple[str, Claimed | None]] = asyncio.Queue()
        self._queued: set[str] = set()  # queued or being worked on: never twice at once
        self._tasks: list[asyncio.Task[None]] = []

    def submit(self, payment_id: str, claimed: Claimed | None = None) -> None:
        """Queue ``payment_id`` (its claim is ours). Call only after the claim committed;
        ``claimed``: the payment as that transaction left it (else it is loaded)."""
        if payment_id in self._queued:
            return
        self._queued.add(payment_id)
        self._queue.put_nowait((payment_id, claimed))

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"charger-{n}") for n in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="charger-sweep"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def sweep(self) -> int:
        """Queue the payments whose work is due; returns how many were claimed."""
        room = self.concurrency * 4 - self._queue.qsize()
        if room <= 0:
            return 0
        claimed = await self.handlers.claim_due(room)
        for payment_id in claimed:
            self.submit(payment_id)
        if claimed:
            log.info("payments_sweep_claimed", count=len(claimed))
        return len(claimed)

    async def advance(self, payment_id: str, claimed: Claimed | None = None) -> None:
        """Do the provider work the payment needs now, until none is left or it must wait."""
        if claimed is None:
            claimed = await self.handlers.load_claimed(payment_id)
        while claimed is not None:
            step = p.next_step(claimed.state)
            if step is None:
                await self.handlers.release(payment_id, claimed.state.version)
                return
            recorded = await (
                self._charge(claimed) if step is p.NextStep.charge else self._refund(claimed)
            )
            if recorded is None or not recorded.events:
                return  # must wait, or someone else recorded the news (and owns what follows)
            if p.next_step(recorded.after) is None:
                return  # that transaction cleared next_attempt_at: nothing to release
            claimed = await self.handlers.load_claimed(payment_id)  # e.g. a refund became due

    # --- internals ------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            payment_id, claimed = await self._queue.get()
            try:
                with structlog.contextvars.bound_contextvars(payment_id=payment_id):
                    await self.advance(payment_id, claimed)
            except (OperationalError, DBAPIError, OSError) as exc:
                # The claim stays: the sweep tries again once it lapses.
                log.warning("payment_advance_failed", payment_id=payment_id, error=str(exc))
            except Exception:
                log.exception("payment_advance_failed", payment_id=payment_id)
            finally:
                self._queued.discard(payment_id)
                self._queue.task_done()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except (OperationalError, DBAPIError, OSError) as exc:
                log.warning("payments_sweep_failed", error=str(exc))
            await asyncio.sleep(self.sweep_interval_s)

    async def _charge(self, claimed: Claimed) -> Recorded | None:
        """Charge once; what was recorded, None when the payment must wait."""
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
                await self._postpone(claimed, None)
                return None
            command = p.Fail(code=exc.code, reason=exc.message)
        except ProviderUnavailable as exc:
            await self._postpone(claimed, exc.retry_after_s, reason=exc.reason)
            return None
        else:
            command = command_for(intent)
        if command is None:
            return None
        return await self.handlers.record(self._caller(claimed), state.payment_id, command)

    async def _refund(self, claimed: Claimed) -> Recorded | None:
        """Refund what is left of a closed order's payment; what was recorded, None when the
        payment must wait (or an operator must step in)."""
        state = claimed.state
        assert state.provider_payment_id is not None  # captured payments have one
        try:
            refund = await self.gateway.create_refund(
                idempotency_key=p.refund_idempotency_key(state),
                intent_id=state.provider_payment_id,
                amount_cents=state.refundable_cents,
            )
        except ProviderUnavailable as exc:
            await self._postpone(claimed, exc.retry_after_s, reason=exc.reason)
            return None
        except ProviderRejected as exc:
            # E.g. refunded outside Waybill: nothing we can settle automatically.
            log.error("payment_auto_refund_rejected", code=exc.code, message=exc.message)
            await self.handlers.release(state.payment_id, state.version)
            return None
        command = p.Refund(refund_id=refund.id, amount_cents=refund.amount, reason="order_closed")
        return await self.handlers.record(self._caller(claimed), state.payment_id, command)

    async def _postpone(
        self, claimed: Claimed, retry_after_s: float | None, *, reason: str = "misconfigured"
    ) -> None:
        delay = self.gateway.policy.reschedule_s(claimed.attempts, retry_after_s)
        log.warning(
            "payment_provider_work_postponed",
            payment_id=claimed.state.payment_id,
            reason=reason,
            attempts=claimed.attempts + 1,
            retry_in_s=round(delay, 3),
        )
        await self.handlers.postpone(claimed.state.payment_id, delay)

    @staticmethod
    def _caller(claimed: Claimed) -> Caller:
        # The saga's correlation id and trace continue from the event that created the payment.
        return Caller(
            tenant_id=claimed.tenant_id,
            correlation_id=claimed.correlation_id or f"charger-{uuid.uuid4()}",
            causation_id=claimed.causation_id,
            traceparent=claimed.traceparent,
        )
