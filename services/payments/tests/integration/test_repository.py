"""The payments repository on a real PostgreSQL database of its own: the hot-path statements
stay one driver round trip each (ADR 0007), and each answers the question its caller relies on
(a payment opened once, locked only for its own tenant, a provider event applied once)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waybill.common.db import create_engine, driver, migrate
from waybill.payments import repository
from waybill.payments.app import MIGRATIONS
from waybill.payments.domain import payment as p


@pytest.fixture
async def engine(infra) -> AsyncIterator[AsyncEngine]:
    name = await asyncio.to_thread(infra.new_database, "payments_repository")
    dsn = infra.settings().database_dsn(name)
    await asyncio.to_thread(migrate, dsn, MIGRATIONS)
    engine = create_engine(dsn, pool_size=2)
    yield engine
    await engine.dispose()


@asynccontextmanager
async def counting(conn: AsyncConnection) -> AsyncIterator[list[str]]:
    """Every statement ``conn`` sends while inside: driver (asyncpg) and SQLAlchemy ones."""
    sent: list[str] = []
    raw = await driver(conn)

    def on_driver(record: Any) -> None:
        sent.append(record.query)

    def on_sqlalchemy(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    raw.add_query_logger(on_driver)
    event.listen(conn.sync_connection, "before_cursor_execute", on_sqlalchemy)
    try:
        yield sent
    finally:
        event.remove(conn.sync_connection, "before_cursor_execute", on_sqlalchemy)
        raw.remove_query_logger(on_driver)


def new_payment(tenant_id: str) -> p.Payment:
    order_id = f"ord_{uuid.uuid4().hex[:8]}"
    state = p.Payment(payment_id=p.payment_id_for(tenant_id, order_id))
    events = p.decide(
        state,
        p.CreatePayment(
            payment_id=state.payment_id,
            order_id=order_id,
            amount_cents=1250,
            currency="EUR",
            payment_method="pm_card_visa",
            provider="sandbox",
        ),
    )
    for e in events:
        state = p.evolve(state, e)
    return state


async def one_round_trip(conn: AsyncConnection, call: Callable[[], Awaitable[Any]]) -> Any:
    async with counting(conn) as sent:
        result = await call()
        await asyncio.sleep(0)  # asyncpg calls its query loggers with call_soon: let them run
    assert len(sent) == 1, sent
    return result


async def test_a_payment_opens_once_in_one_round_trip(engine: AsyncEngine):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    state = new_payment(tenant)
    now = datetime.now(UTC)

    async with engine.begin() as conn:
        first = await one_round_trip(
            conn, lambda: repository.insert_payment(conn, tenant, state, now)
        )
        again = await one_round_trip(
            conn, lambda: repository.insert_payment(conn, tenant, state, now)
        )

    assert first is True
    assert again is False  # order.placed redelivered: the payment exists


async def test_a_payment_is_locked_only_for_its_own_tenant_in_one_round_trip(
    engine: AsyncEngine,
):
    tenant, other = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    state = new_payment(tenant)
    async with engine.begin() as conn:
        await repository.insert_payment(conn, tenant, state, datetime.now(UTC))

    async with engine.begin() as conn:
        mine = await one_round_trip(
            conn, lambda: repository.lock_payment(conn, tenant, state.payment_id)
        )
        theirs = await one_round_trip(
            conn, lambda: repository.lock_payment(conn, other, state.payment_id)
        )

    assert mine is True
    assert theirs is False


async def test_the_projection_update_is_one_round_trip_and_reads_back(engine: AsyncEngine):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    state = new_payment(tenant)
    async with engine.begin() as conn:
        await repository.insert_payment(conn, tenant, state, datetime.now(UTC))
    captured = replace(
        state, status=p.PaymentStatus.captured, provider_payment_id="pi_1", version=2
    )

    async with engine.begin() as conn:
        await one_round_trip(
            conn, lambda: repository.update_payment(conn, captured, datetime.now(UTC))
        )

    async with engine.connect() as conn:
        row = await repository.payment_row(conn, tenant, state.payment_id)
        assert await repository.find_by_provider_id(conn, "pi_1") == state.payment_id
        assert await repository.payment_row(conn, "another-tenant", state.payment_id) is None
    assert (row.status, row.provider_payment_id, row.version) == ("captured", "pi_1", 2)


async def test_a_provider_event_is_recorded_once(engine: AsyncEngine):
    event_id = f"evt_{uuid.uuid4().hex}"
    async with engine.begin() as conn:
        first = await repository.record_provider_event(conn, event_id, "payment_intent.succeeded")
        again = await repository.record_provider_event(conn, event_id, "payment_intent.succeeded")

    assert (first, again) == (True, False)
