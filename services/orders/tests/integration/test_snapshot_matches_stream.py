"""The projection rows orders uses as snapshots equal a fold of their streams, after every
command of any sequence (hypothesis), through the real handlers on PostgreSQL.

``OrderHandlers.apply_in`` decides on the locked ``orders`` row instead of replaying the
stream, and stock keeping does the same with the ``inventory`` row: both are only correct
while every transaction moves the row and the stream together. This property is that claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from waybill.common import topics
from waybill.common.contracts import orders as contract
from waybill.common.contracts.orders import Address, Customer, LineItem
from waybill.common.db import create_engine, migrate
from waybill.common.eventstore import Caller, EventStore
from waybill.common.registry import EventRegistry
from waybill.orders import repository as db
from waybill.orders import tables as t
from waybill.orders.app import MIGRATIONS
from waybill.orders.domain import inventory as inv
from waybill.orders.domain import order as o
from waybill.orders.domain.errors import OrdersError
from waybill.orders.handlers import OrderHandlers
from waybill.orders.stock import inventory_stream

pytestmark = pytest.mark.infra

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

commands = st.one_of(
    st.builds(o.MarkPaid, payment_id=st.just("pay_1")),
    st.builds(o.MarkPaymentFailed, reason=st.just("card_declined: no")),
    st.builds(o.CancelOrder, reason=st.sampled_from([None, "requested"])),
    # Before or after the reservation deadline: only the latter expires the order.
    st.builds(o.ExpireOrder, now=st.sampled_from([NOW, NOW + timedelta(hours=1)])),
    st.builds(o.MarkShipped, shipment_id=st.just("shp_1")),
    st.builds(o.MarkDelivered, shipment_id=st.just("shp_1")),
    st.builds(o.MarkReturned, shipment_id=st.just("shp_1")),
)

SHIPPED_RETURNED_SHIPPED_DELIVERED = [
    o.MarkShipped("shp_1"),
    o.MarkReturned("shp_1"),
    o.MarkShipped("shp_1"),
    o.MarkShipped("shp_1"),  # the same news again: nothing new
    o.MarkDelivered("shp_1"),
]


@pytest.fixture(scope="module")
async def handlers(infra) -> AsyncIterator[OrderHandlers]:
    name = await asyncio.to_thread(infra.new_database, "orders_snapshots")
    dsn = infra.settings().database_dsn(name)
    await asyncio.to_thread(migrate, dsn, MIGRATIONS)
    engine = create_engine(dsn, pool_size=2)
    store = EventStore(
        t.events,
        t.outbox,
        source="/waybill/orders",
        topic=topics.ORDERS_EVENTS,
        registry=contract.register(EventRegistry()),
    )
    yield OrderHandlers(engine=engine, store=store, clock=lambda: NOW)
    await engine.dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    quantity=st.integers(min_value=1, max_value=5),
    sequence=st.lists(commands, max_size=8),
)
# The shipment's round trip, every move of it in one sequence: sent out, returned, sent out
# again (returned -> shipped), delivered; and a shipment returned before it went out.
@example(quantity=1, sequence=[o.MarkPaid("pay_1"), *SHIPPED_RETURNED_SHIPPED_DELIVERED])
@example(
    quantity=2, sequence=[o.MarkPaid("pay_1"), o.MarkReturned("shp_1"), o.MarkShipped("shp_1")]
)
async def test_the_order_and_stock_rows_equal_a_fold_of_their_streams_after_every_command(
    handlers: OrderHandlers, quantity: int, sequence: list[o.Command]
) -> None:
    caller = Caller(tenant_id=f"t_{uuid.uuid4().hex[:10]}", correlation_id="property")
    order_id, sku = f"ord_{uuid.uuid4().hex}", "SNAP"
    await handlers.set_stock(caller, sku, 10)
    await handlers.place_order(caller, _place(order_id, sku, quantity))
    await _assert_rows_match_streams(handlers, caller, order_id, sku)
    for command in sequence:
        with contextlib.suppress(OrdersError):  # an invalid move changes nothing
            await handlers.apply(caller, order_id, command)
        await _assert_rows_match_streams(handlers, caller, order_id, sku)


def _place(order_id: str, sku: str, quantity: int) -> o.PlaceOrder:
    return o.PlaceOrder(
        order_id=order_id,
        customer=Customer(id="cus_1", email="ada@example.com"),
        items=(LineItem(sku=sku, quantity=quantity, unit_price_cents=1250),),
        currency="USD",
        shipping_address=Address(line1="1 Main", city="X", postal_code="10001", country="US"),
        payment_method="pm_card_ok",
        expires_at=NOW + timedelta(minutes=15),
    )


async def _assert_rows_match_streams(
    handlers: OrderHandlers, caller: Caller, order_id: str, sku: str
) -> None:
    async with handlers.engine.connect() as conn:
        order_row = (
            await conn.execute(select(t.orders).where(t.orders.c.order_id == order_id))
        ).one()
        stock_row = (
            await conn.execute(
                select(t.inventory).where(
                    t.inventory.c.tenant_id == caller.tenant_id, t.inventory.c.sku == sku
                )
            )
        ).one()
        reserved = (
            await conn.execute(
                select(t.reservations.c.order_id, t.reservations.c.quantity).where(
                    t.reservations.c.tenant_id == caller.tenant_id, t.reservations.c.sku == sku
                )
            )
        ).all()
        order_stream = await handlers.store.load(conn, order_id)
        stock_stream = await handlers.store.load(conn, inventory_stream(caller.tenant_id, sku))

    # The very function apply_in decides on (customer and address included: order.paid v2).
    snapshot = db.snapshot(order_id, order_row._mapping)
    assert snapshot == o.fold(order_id, [r.typed() for r in order_stream])  # type: ignore[misc]

    folded = inv.Stock(sku=sku)
    for recorded in stock_stream:
        folded = inv.evolve(folded, recorded.typed())  # type: ignore[arg-type]
    assert (stock_row.available, stock_row.reserved, stock_row.version) == (
        folded.available,
        folded.reserved,
        folded.version,
    )
    assert dict(reserved) == folded.reservations
