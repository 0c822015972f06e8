"""The payment handlers on a real PostgreSQL database of their own: what a new payment hands
the charger, and how each recorded outcome leaves the payment's ``charges`` job (its claim on
the provider work) that the charger and the queue rely on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from waybill.common import topics
from waybill.common.contracts.orders import Address, Customer, LineItem, OrderPlaced
from waybill.common.db import create_engine, migrate
from waybill.common.eventstore import Caller, EventStore
from waybill.common.queue import JobQueue, QueueSpec
from waybill.payments import tables as t
from waybill.payments.app import MIGRATIONS, payment_registry
from waybill.payments.domain import payment as p
from waybill.payments.domain.errors import PaymentNotFound
from waybill.payments.handlers import Claimed, PaymentHandlers


@pytest.fixture
async def handlers(infra) -> AsyncIterator[PaymentHandlers]:
    name = await asyncio.to_thread(infra.new_database, "payments_handlers")
    dsn = infra.settings().database_dsn(name)
    await asyncio.to_thread(migrate, dsn, MIGRATIONS)
    engine = create_engine(dsn, pool_size=2)
    store = EventStore(
        t.events,
        t.outbox,
        source="/waybill/payments",
        topic=topics.PAYMENTS_EVENTS,
        registry=payment_registry(),
    )
    charges = JobQueue(engine, QueueSpec(name="charges"))
    yield PaymentHandlers(engine=engine, store=store, charges=charges)
    await engine.dispose()


def placed(order_id: str, total_cents: int = 1250) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer=Customer(id="c1", email="c1@example.com"),
        items=(LineItem(sku="SKU-1", quantity=1, unit_price_cents=total_cents),),
        currency="USD",
        total_cents=total_cents,
        shipping_address=Address(line1="1 Main St", city="Ely", postal_code="1", country="GB"),
        payment_method="pm_card_ok",
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
    )


def consumer_caller(tenant_id: str) -> Caller:
    return Caller(
        tenant_id=tenant_id,
        correlation_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


async def open_payment(handlers: PaymentHandlers, caller: Caller, order_id: str) -> Claimed | None:
    async with handlers.engine.begin() as conn:
        return await handlers.open_payment(conn, caller, placed(order_id))


async def row(handlers: PaymentHandlers, payment_id: str) -> Any:
    async with handlers.engine.connect() as conn:
        result = await conn.execute(select(t.payments).where(t.payments.c.id == payment_id))
        return result.one()


async def jobs(handlers: PaymentHandlers, payment_id: str) -> list[Any]:
    """The payment's charges jobs, oldest first."""
    async with handlers.engine.connect() as conn:
        result = await conn.execute(
            select(t.queue_jobs)
            .where(t.queue_jobs.c.queue == "charges", t.queue_jobs.c.key == payment_id)
            .order_by(t.queue_jobs.c.id)
        )
        return list(result.all())


async def test_a_new_payment_hands_the_charger_exactly_what_loading_it_would(
    handlers: PaymentHandlers,
):
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")

    opened = await open_payment(handlers, caller, "ord_1")

    assert opened is not None
    assert opened == await handlers.load_claimed(opened.state.payment_id)
    assert opened.state.status is p.PaymentStatus.pending
    assert opened.attempts == 0
    stored = await row(handlers, opened.state.payment_id)
    assert stored.version == 1
    (job,) = await jobs(handlers, opened.state.payment_id)  # claimed for the charge that follows
    assert job.status == "running" and opened.job is not None and opened.job.id == job.id


async def test_without_a_local_charger_a_new_payments_job_is_left_for_any_worker(
    handlers: PaymentHandlers,
):
    """A process without the workers role (WAYBILL_ROLES) must not claim the job for a
    charger it does not run: the job stays queued for the workers' processes."""
    handlers.charge_locally = False
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")

    opened = await open_payment(handlers, caller, "ord_1")

    assert opened is not None and opened.job is None
    (job,) = await jobs(handlers, opened.state.payment_id)
    assert job.status == "queued"
    (claimed,) = await handlers.charges.claim(10)  # what a workers process does on its NOTIFY
    assert claimed.payload == {"payment_id": opened.state.payment_id}


async def test_order_placed_again_opens_nothing(handlers: PaymentHandlers):
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")
    first = await open_payment(handlers, caller, "ord_1")

    again = await open_payment(handlers, consumer_caller(caller.tenant_id), "ord_1")
    concurrent = await asyncio.gather(*(open_payment(handlers, caller, "ord_2") for _ in range(2)))

    assert first is not None
    assert again is None
    assert (await row(handlers, first.state.payment_id)).version == 1
    assert sorted(c is None for c in concurrent) == [False, True]  # one of two racing copies


async def test_an_outcome_that_leaves_no_provider_work_clears_the_claim(
    handlers: PaymentHandlers,
):
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")
    opened = await open_payment(handlers, caller, "ord_1")
    assert opened is not None
    payment_id = opened.state.payment_id

    recorded = await handlers.record(
        caller, payment_id, p.Capture(provider_payment_id="pi_1"), opened.job
    )

    assert p.next_step(recorded.after) is None
    stored = await row(handlers, payment_id)
    assert (stored.status, stored.provider_payment_id, stored.version) == ("captured", "pi_1", 2)
    (job,) = await jobs(handlers, payment_id)
    assert job.status == "done"  # in the outcome's transaction: so the charger need not
    assert await handlers.charges.claim(100) == []


async def test_a_capture_on_an_order_closed_meanwhile_keeps_the_claim_for_the_refund(
    handlers: PaymentHandlers,
):
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")
    opened = await open_payment(handlers, caller, "ord_1")
    assert opened is not None
    payment_id = opened.state.payment_id
    (claim,) = await jobs(handlers, payment_id)
    async with handlers.engine.begin() as conn:  # order.cancelled lands while charging
        closed = await handlers.close_order(conn, caller, "ord_1", "cancelled")
    assert closed is not None and not closed.newly_needs_provider

    # The charger still holds the state it was handed (order open); the record decides anew.
    recorded = await handlers.record(
        caller, payment_id, p.Capture(provider_payment_id="pi_1"), opened.job
    )

    assert p.next_step(recorded.after) is p.NextStep.refund
    stored = await row(handlers, payment_id)
    assert stored.status == "captured"
    assert stored.order_closed is True
    # Still the charger's (same job, same claim): it goes on to the refund.
    assert [(j.id, j.status, j.run_at) for j in await jobs(handlers, payment_id)] == [
        (claim.id, "running", claim.run_at)
    ]


async def test_an_order_closed_after_capture_claims_the_payment_afresh(
    handlers: PaymentHandlers,
):
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")
    opened = await open_payment(handlers, caller, "ord_1")
    assert opened is not None
    payment_id = opened.state.payment_id
    assert opened.job is not None
    await handlers.charges.reschedule(opened.job, 0.0, "provider down")  # one failed attempt
    (retry,) = await handlers.charges.claim(10)
    await handlers.record(caller, payment_id, p.Capture(provider_payment_id="pi_1"), retry)

    async with handlers.engine.begin() as conn:
        closed = await handlers.close_order(conn, caller, "ord_1", "cancelled")

    assert closed is not None and closed.newly_needs_provider
    first, fresh = await jobs(handlers, payment_id)
    assert (first.status, first.attempts) == ("done", 2)
    assert (fresh.status, fresh.attempts) == ("queued", 0)  # claimed afresh, no attempts yet


async def test_an_outcome_for_another_tenants_payment_is_not_found(handlers: PaymentHandlers):
    caller = consumer_caller(f"t-{uuid.uuid4().hex[:8]}")
    opened = await open_payment(handlers, caller, "ord_1")
    assert opened is not None

    with pytest.raises(PaymentNotFound):
        await handlers.record(
            consumer_caller("someone-else"),
            opened.state.payment_id,
            p.Capture(provider_payment_id="pi_1"),
        )
